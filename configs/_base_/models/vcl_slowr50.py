# What the four algorithms share (paper sec. 5.1 and its reference [1]):
# the multi-view data preprocessor, Slow-R50 keeping all 8 frames to res5
# (T = 8 at the last stage) and a per-frame 3-layer projection MLP (hidden
# 2048, M = 128). No decoupler: plain V-CL, one loss on the unified embedding
# Z = mean_t z_t. The algorithm bases ({vsimclr,vmoco,vbyol,vswav}_slowr50.py)
# add the model type and head; configs/_base_/bodvcl.py adds the decoupling.
model = dict(
    with_lower_loss=False,  # L_pred is BOD-VCL's lower level, not in L
    strict_lower=False,
    data_preprocessor=dict(
        type='MultiViewDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375]),
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
    neck=dict(
        type='PerFrameProjectionNeck',
        in_channels=2048,
        hid_channels=2048,
        out_channels=128,
        num_layers=3,
        norm_cfg=dict(type='SyncBN')))
