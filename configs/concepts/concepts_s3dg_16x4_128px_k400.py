# Static and Dynamic Concepts on S3D-G, 16 frames at interval 4, 128 px,
# pretrained on Kinetics-400 for 100 epochs: Table 1's "S3D Kinetics-400"
# rows. S3D-G keeps its stem's temporal stride 2 and no temporal pooling
# after it (T = 8 at the last stage, 1024 channels); backbone as
# configs/downstream/_base_/models/s3dg.py. 8 GPUs x 12 videos.
_base_ = './concepts_r2plus1d18_16x4_112px_k400.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='S3DG',
        conv1_stride_t=2,
        pool_strides_t=(1, 1),
        norm_cfg=dict(type='SyncBN', requires_grad=True)),
    head=dict(in_channels=1024),
    local_contrast=dict(in_channels=1024, embed_dim=1024))

# The per-view augmentation of the base at 128 px.
train_dataloader = dict(
    dataset=dict(pipeline=[
        dict(step, transforms=[
            dict(t, scale=(128, 128)) if t['type'] == 'Resize' else t
            for t in step['transforms']
        ]) if step['type'] == 'MultiViewAugment' else step
        for step in _base_.train_pipeline
    ]))
