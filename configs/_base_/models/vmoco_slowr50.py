# V-MoCo [1] on Slow-R50: momentum encoder (0.994, cosine-annealed to 1) and
# a queue of 65536 keys per part (BOD-VCL: separate static and dynamic
# queues). No SyncBN: MoCo shuffles the key batch across GPUs instead
# (shuffle-BN).
_base_ = './vcl_slowr50.py'

model = dict(
    type='VMoCo',
    base_momentum=0.994,
    backbone=dict(norm_cfg=dict(type='BN3d', requires_grad=True)),
    neck=dict(norm_cfg=dict(type='BN1d')),
    head=dict(
        type='MoCoQueueHead',
        embed_dim=128,  # = neck.out_channels (M)
        queue_len=65536,
        loss=dict(type='QueueInfoNCELoss', temperature=0.1)))
