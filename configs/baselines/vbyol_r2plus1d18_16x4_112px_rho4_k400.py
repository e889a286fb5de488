# V-BYOL on R(2+1)D-18 with temporal strides 1 (Tables 3 and 4): 16 frames
# at interval 4, 112 px, rho = 4, Kinetics-400, 200 epochs. 16 GPUs x 8
# videos. Backbone as configs/downstream/_base_/models/r2plus1d_18.py.
_base_ = './vbyol_r3d18_16x4_112px_rho4_k400.py'

model = _base_.model
# an assignment: R(2+1)D-18 replaces R3D-18 as a whole (no merge)
model.backbone = dict(
    type='ResNet2Plus1d',
    depth=18,
    pretrained=None,
    pretrained2d=False,
    norm_eval=False,
    conv_cfg=dict(type='Conv2plus1d'),
    norm_cfg=dict(type='SyncBN', requires_grad=True, eps=1e-3),
    conv1_kernel=(3, 7, 7),
    conv1_stride_t=1,
    pool1_stride_t=1,
    inflate=(1, 1, 1, 1),
    spatial_strides=(1, 2, 2, 2),
    temporal_strides=(1, 1, 1, 1),  # keep all 16 frames
    zero_init_residual=False)
