# V-BYOL [1] on Slow-R50: momentum encoder (0.996, cosine-annealed to 1),
# BYOL's 2-layer projection (hidden 4096) and a predictor (hidden 4096).
_base_ = './vcl_slowr50.py'

model = dict(
    type='VBYOL',
    base_momentum=0.996,
    neck=dict(hid_channels=4096, num_layers=2),
    head=dict(
        type='BYOLPredictionHead',
        in_channels=128,  # = neck.out_channels (M)
        hidden_channels=4096,
        out_channels=128,
        loss=dict(type='BYOLCosineLoss')))
