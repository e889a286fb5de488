# V-SimCLR + BOD-VCL, Slow-R50 8x8, rho = 2, Kinetics-400, 200 epochs
# (paper sec. 5.1; Tables 2, 3, 5, 6). 16 GPUs x 8 videos.
_base_ = [
    '../_base_/datasets/k400_multiview_8x8.py',
    '../_base_/schedules/lars_bilevel_200e.py',
    '../_base_/default_runtime.py',
]

model = dict(
    type='VSimCLR',
    decouple=True,  # L_A on Z_A plus L_M on Z_M
    with_pred_loss=False,  # L_pred is the lower level, not added to L
    strict_lower=False,
    data_preprocessor=dict(
        type='MultiViewDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375]),
    # Slow-R50 keeping all 8 frames to res5 (T = 8 at the last stage)
    backbone=dict(
        type='ResNet3dSlowOnly',
        depth=50,
        pretrained=None,
        lateral=False,
        conv1_kernel=(1, 7, 7),
        conv1_stride_t=1,
        pool1_stride_t=1,
        inflate=(0, 0, 1, 1),
        norm_cfg=dict(type='SyncBN', requires_grad=True),
        norm_eval=False),
    # per-frame 3-layer projection MLP (hidden 2048, M = 128) + Koopman split
    neck=dict(
        type='KoopmanNeck',
        in_channels=2048,
        hid_channels=2048,
        out_channels=128,
        num_layers=3,
        norm_cfg=dict(type='SyncBN'),
        xi=0.1,
        nu=1e-4),
    head=dict(
        type='MultiViewContrastiveHead',
        loss=dict(type='MultiViewInfoNCELoss', temperature=0.1)))
