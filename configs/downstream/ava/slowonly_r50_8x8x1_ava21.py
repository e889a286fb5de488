# Table 6: AVA v2.1 action detection with a pretrained Slow-R50 8x8 (the
# paper's default sampling): MMAction2's SlowOnly AVA v2.1 detector (FastRCNN,
# AVARoIHead with RoIAlign, AVAMetric, FAIR person proposals) with its K400
# supervised initialisation replaced by our pretrained encoder.
_base_ = 'mmaction::detection/slowonly/slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py'  # noqa: E501

custom_imports = dict(imports=['mmbodvcl'], allow_failed_imports=False)

# The pretrained encoder: a checkpoint with ``backbone.*`` keys, written by
# tools/extract_backbone.py; the FastRCNN's backbone has the same keys as the
# recogniser's. Override with ``--cfg-options load_from=PATH``; a missing file
# stops the run.
load_from = 'checkpoints/pretrained_backbone.pth'

# No supervised Kinetics initialisation (the base config downloads one).
model = dict(init_cfg=None)

file_client_args = dict(io_backend='disk')
train_pipeline = [
    dict(type='SampleAVAFrames', clip_len=8, frame_interval=8),
    dict(type='RawFrameDecode', **file_client_args),
    dict(type='RandomRescale', scale_range=(256, 320)),
    dict(type='RandomCrop', size=256),
    dict(type='Flip', flip_ratio=0.5),
    dict(type='FormatShape', input_format='NCTHW', collapse=True),
    dict(type='PackActionInputs')
]
# The testing is without any cropping / flipping, as in MMAction2's config.
val_pipeline = [
    dict(
        type='SampleAVAFrames', clip_len=8, frame_interval=8, test_mode=True),
    dict(type='RawFrameDecode', **file_client_args),
    dict(type='Resize', scale=(-1, 256)),
    dict(type='FormatShape', input_format='NCTHW', collapse=True),
    dict(type='PackActionInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=val_pipeline))
test_dataloader = val_dataloader
