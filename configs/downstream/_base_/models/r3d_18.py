# R3D-18 (Table 3): 3D ResNet-18 with 3x3x3 kernels everywhere and time kept
# at every stage (no temporal stride, no pool2), as in pretraining.
_base_ = 'mmaction::_base_/models/i3d_r50.py'

model = dict(
    backbone=dict(
        depth=18,
        pretrained=None,
        pretrained2d=False,
        conv1_kernel=(3, 7, 7),
        conv1_stride_t=1,
        pool1_stride_t=1,
        with_pool2=False,
        inflate=(1, 1, 1, 1),
        inflate_style='3x3x3'),
    cls_head=dict(in_channels=512))
