# V-MoCo + BOD-VCL, Slow-R50 8x8, rho = 2, Kinetics-400, 200 epochs
# (paper sec. 5.1; Tables 2, 3, 5, 6). 16 GPUs x 8 videos. No SyncBN:
# MoCo shuffles the key batch across GPUs instead (shuffle-BN).
_base_ = './vsimclr_slowr50_k400.py'

model = dict(
    type='VMoCo',
    base_momentum=0.994,  # cosine-annealed to 1 over training
    backbone=dict(norm_cfg=dict(type='BN3d', requires_grad=True)),
    neck=dict(norm_cfg=dict(type='BN1d')),
    # separate static and dynamic queues of 65536 keys each
    head=dict(
        _delete_=True,
        type='MoCoQueueHead',
        embed_dim=128,
        queue_len=65536,
        loss=dict(type='QueueInfoNCELoss', temperature=0.1)))
