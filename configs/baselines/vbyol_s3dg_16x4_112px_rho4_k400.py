# V-BYOL on S3D-G (Table 3): 16 frames at interval 4, 112 px, rho = 4,
# Kinetics-400, 200 epochs. 16 GPUs x 8 videos. S3DG keeps its stem's
# temporal stride 2 and no temporal pooling after it, so T = 8 at the last
# stage; backbone as configs/downstream/_base_/models/s3dg.py.
_base_ = './vbyol_r3d18_16x4_112px_rho4_k400.py'

model = _base_.model
# an assignment: S3D-G replaces R3D-18 as a whole (no merge)
model.backbone = dict(
    type='S3DG',
    conv1_stride_t=2,
    pool_strides_t=(1, 1),
    norm_cfg=dict(type='SyncBN', requires_grad=True))
model.neck.in_channels = 1024
