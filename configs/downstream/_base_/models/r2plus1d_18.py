# R(2+1)D-18 (Tables 3 and 4) with temporal strides 1, so time is kept at the
# last stage as in pretraining. Plain BN: SyncBN is for multi-GPU runs only
# (switch with --cfg-options model.backbone.norm_cfg.type=SyncBN).
_base_ = 'mmaction::_base_/models/r2plus1d_r34.py'

model = dict(
    backbone=dict(
        depth=18,
        temporal_strides=(1, 1, 1, 1),
        norm_cfg=dict(type='BN3d', requires_grad=True, eps=1e-3)))
