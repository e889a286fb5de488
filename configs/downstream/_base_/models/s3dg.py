# S3D-G (Table 3), registered by mmbodvcl (MMAction2 has none); the head and
# preprocessing are those of MMAction2's 3D CNN recognisers.
_base_ = 'mmaction::_base_/models/slowonly_r50.py'

model = dict(
    backbone=dict(_delete_=True, type='S3DG'),
    cls_head=dict(in_channels=1024))
