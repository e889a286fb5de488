# V-BYOL + BOD-VCL on ViT-B (Tables 3 and 4): 16 frames at interval 4,
# 224 px, rho = 4, Kinetics-400, 800 epochs. 16 GPUs x 8 videos.
# PerFrameViT is MMAction2's VisionTransformer (same parameters as
# configs/downstream/_base_/models/vit_b.py) pooling tokens per temporal
# position: tubelets of 2 frames give T = 8.
_base_ = './vbyol_slowr50_16x4_rho4_k400.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='PerFrameViT',
        img_size=224,
        patch_size=16,
        embed_dims=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4,
        qkv_bias=True,
        num_frames=16,
        norm_cfg=dict(type='LN', eps=1e-6)),
    neck=dict(in_channels=768))

max_epochs = 800
warmup_epochs = 35
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=0.,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(max_epochs=max_epochs)
