# V-SwAV [1] on Slow-R50: 1000 prototypes per part (BOD-VCL: separate static
# and dynamic prototypes), Sinkhorn with epsilon 0.05 and 3 iterations.
_base_ = './vcl_slowr50.py'

model = dict(
    type='VSwAV',
    head=dict(
        type='SwAVPrototypeHead',
        embed_dim=128,  # = neck.out_channels (M)
        num_prototypes=1000,
        # prototypes frozen for the first epoch: K400's ~240k training
        # videos in batches of 128
        freeze_prototypes_iters=1878,
        loss=dict(
            type='SwAVLoss', temperature=0.1, epsilon=0.05,
            sinkhorn_iters=3)))
