# V-BYOL + BOD-VCL with rho = 4 views per video (Tables 3 and 5),
# Slow-R50 8x8, Kinetics-400, 200 epochs. 16 GPUs x 8 videos.
_base_ = './vbyol_slowr50_k400.py'

train_pipeline = [
    dict(type='MultiViewDecordInit'),
    dict(
        type='MultiViewSampleFrames',
        clip_len=8,
        frame_interval=8,
        num_views=4),
    dict(type='MultiViewDecordDecode'),
    dict(
        type='MultiViewAugment',
        transforms={{_base_.per_view_transforms}}),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackMultiViewInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))

# [1]'s BYOL recipe doubles the learning rate for rho = 4
optim_wrapper = dict(optimizer=dict(lr=2.4))
