# V-SwAV + BOD-VCL, Slow-R50 8x8, rho = 2, Kinetics-400, 200 epochs
# (paper sec. 5.1; Tables 2, 3, 5, 6). 16 GPUs x 8 videos.
_base_ = './vsimclr_slowr50_k400.py'

model = dict(
    type='VSwAV',
    # static and dynamic parts each have their own 1000 prototypes
    head=dict(
        _delete_=True,
        type='SwAVPrototypeHead',
        embed_dim=128,
        num_prototypes=1000,
        # prototypes frozen for the first epoch: K400's ~240k training
        # videos in batches of 128
        freeze_prototypes_iters=1878,
        loss=dict(
            type='SwAVLoss', temperature=0.1, epsilon=0.05,
            sinkhorn_iters=3)))
