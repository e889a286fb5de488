# V-BYOL + BOD-VCL with 16x4 sampling and rho = 4 (Tables 3 and 5),
# Slow-R50 keeping all 16 frames, Kinetics-400, 200 epochs.
# 16 GPUs x 8 videos.
_base_ = './vbyol_slowr50_rho4_k400.py'

train_pipeline = [
    dict(type='MultiViewDecordInit'),
    dict(
        type='MultiViewSampleFrames',
        clip_len=16,
        frame_interval=4,
        num_views=4),
    dict(type='MultiViewDecordDecode'),
    dict(
        type='MultiViewAugment',
        transforms={{_base_.per_view_transforms}}),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackMultiViewInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
