# V-BYOL on R3D-18 (Table 3): 16 frames at interval 4, 112 px, rho = 4,
# Kinetics-400, 200 epochs. 16 GPUs x 8 videos. The backbone is the one of
# configs/downstream/_base_/models/r3d_18.py (time kept at every stage), so
# the checkpoint loads there without missing keys.
_base_ = './vbyol_slowr50_16x4_rho4_k400.py'

model = _base_.model
# an assignment: R3D-18 replaces Slow-R50 as a whole (no merge)
model.backbone = dict(
    type='ResNet3d',
    depth=18,
    pretrained=None,
    pretrained2d=False,
    conv1_kernel=(3, 7, 7),
    conv1_stride_t=1,
    pool1_stride_t=1,
    with_pool2=False,
    inflate=(1, 1, 1, 1),
    inflate_style='3x3x3',
    norm_cfg=dict(type='SyncBN', requires_grad=True),
    norm_eval=False)
model.neck.in_channels = 512

train_pipeline = _base_.train_pipeline
train_pipeline[3].transforms[1].update(scale=(112, 112))  # the Resize
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
