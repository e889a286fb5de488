# ViT-B (Tables 3 and 4): the model of MMAction2's
# recognition/videomae/vit-base-p16_videomae-k400-pre_16x4x1_kinetics-400.py
# (not inherited: that file also carries a K400 test set). It loads
# checkpoints pretrained with mmbodvcl's PerFrameViT, which has the same
# parameters and only pools per temporal position.
model = dict(
    type='Recognizer3D',
    backbone=dict(
        type='VisionTransformer',
        img_size=224,
        patch_size=16,
        embed_dims=768,
        depth=12,
        num_heads=12,
        mlp_ratio=4,
        qkv_bias=True,
        num_frames=16,
        norm_cfg=dict(type='LN', eps=1e-6)),
    cls_head=dict(
        type='TimeSformerHead',
        num_classes=400,
        in_channels=768,
        average_clips='prob'),
    data_preprocessor=dict(
        type='ActionDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        format_shape='NCTHW'))
