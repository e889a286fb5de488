# V-BYOL + BOD-VCL, Slow-R50 8x8, rho = 2, Kinetics-400, 200 epochs
# (paper sec. 5.1; Tables 2, 3, 5, 6). 16 GPUs x 8 videos.
_base_ = './vsimclr_slowr50_k400.py'

model = dict(
    type='VBYOL',
    base_momentum=0.996,  # cosine-annealed to 1 over training
    # BYOL's projector: 2 layers, hidden 4096
    neck=dict(hid_channels=4096, num_layers=2),
    head=dict(
        _delete_=True,
        type='BYOLPredictionHead',
        in_channels=128,
        hidden_channels=4096,
        out_channels=128,
        loss=dict(type='BYOLCosineLoss')))

# [1]'s BYOL recipe: half of SimCLR's learning rate at rho = 2
optim_wrapper = dict(optimizer=dict(lr=1.2))
