# V-SimCLR [1] on Slow-R50: InfoNCE over the views of a batch,
# temperature 0.1.
_base_ = './vcl_slowr50.py'

model = dict(
    type='VSimCLR',
    head=dict(
        type='MultiViewContrastiveHead',
        loss=dict(type='MultiViewInfoNCELoss', temperature=0.1)))
