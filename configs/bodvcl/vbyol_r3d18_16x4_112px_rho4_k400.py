# V-BYOL + BOD-VCL on R3D-18 (Table 3): 16 frames at interval 4, 112 px,
# rho = 4, Kinetics-400, 200 epochs. 16 GPUs x 8 videos. The backbone is
# the one of configs/downstream/_base_/models/r3d_18.py (time kept at every
# stage), so the checkpoint loads there without missing keys.
_base_ = './vbyol_slowr50_16x4_rho4_k400.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='ResNet3d',
        depth=18,
        pretrained=None,
        pretrained2d=False,
        conv1_kernel=(3, 7, 7),
        conv1_stride_t=1,
        pool1_stride_t=1,
        with_pool2=False,
        inflate=(1, 1, 1, 1),
        inflate_style='3x3x3',
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False),
    neck=dict(in_channels=512))

per_view_transforms = [
    dict(
        type='RandomResizedCrop',
        area_range=(0.2, 0.766),
        aspect_ratio_range=(3 / 4, 4 / 3)),
    dict(type='Resize', scale=(112, 112), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='VideoColorJitter',
                brightness=0.6,
                contrast=0.6,
                saturation=0.6,
                hue=0.15)
        ],
        prob=0.8),
    dict(type='VideoRandomGrayscale', prob=0.2),  # one draw per clip
]
train_pipeline = [
    dict(type='MultiViewDecordInit'),
    dict(
        type='MultiViewSampleFrames',
        clip_len=16,
        frame_interval=4,
        num_views=4),
    dict(type='MultiViewDecordDecode'),
    dict(type='MultiViewAugment', transforms=per_view_transforms),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackMultiViewInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
