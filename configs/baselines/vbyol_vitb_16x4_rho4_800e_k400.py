# V-BYOL on ViT-B (Tables 3 and 4): 16 frames at interval 4, 224 px,
# rho = 4, Kinetics-400, 800 epochs. 16 GPUs x 8 videos. PerFrameViT is
# MMAction2's VisionTransformer (same parameters as
# configs/downstream/_base_/models/vit_b.py) pooling tokens per temporal
# position: tubelets of 2 frames give T = 8.
_base_ = './vbyol_slowr50_16x4_rho4_k400.py'

model = _base_.model
# an assignment: ViT-B replaces Slow-R50 as a whole (no merge)
model.backbone = dict(
    type='PerFrameViT',
    img_size=224,
    patch_size=16,
    embed_dims=768,
    depth=12,
    num_heads=12,
    mlp_ratio=4,
    qkv_bias=True,
    num_frames=16,
    norm_cfg=dict(type='LN', eps=1e-6))
model.neck.in_channels = 768

max_epochs = 800
param_scheduler = _base_.param_scheduler
param_scheduler[1].update(  # the cosine decay after the warm-up
    T_max=max_epochs - _base_.warmup_epochs, end=max_epochs)
train_cfg = dict(max_epochs=max_epochs)
