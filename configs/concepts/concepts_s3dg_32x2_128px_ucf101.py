# Static and Dynamic Concepts on S3D-G, 32 frames at interval 2, 128 px,
# pretrained on UCF-101 for 200 epochs: Table 1's "S3D UCF-101" finetuning
# row (32 frames, 128 px). Backbone as configs/downstream/_base_/models/
# s3dg.py. 8 GPUs x 12 videos.
_base_ = './concepts_r2plus1d18_16x4_112px_ucf101.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='S3DG',
        conv1_stride_t=2,
        pool_strides_t=(1, 1),
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    head=dict(in_channels=1024),
    local_contrast=dict(in_channels=1024, embed_dim=1024))

train_pipeline = [
    dict(type='MultiViewDecordInit'),
    dict(
        type='MultiViewSampleFrames',
        clip_len=32,
        frame_interval=2,
        num_views=1),
    dict(type='MultiViewDecordDecode'),
    dict(
        type='MultiViewAugment',
        transforms=[
            dict(step, scale=(128, 128)) if step['type'] == 'Resize' else step
            for step in _base_.per_view_transforms
        ]),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackMultiViewInputs'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
