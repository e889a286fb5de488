# A stock Recognizer3D (MMAction2's packaged Slow-R50 config) shrunk to a
# ResNet3dSlowOnly-18 with 8 base channels on 32x32 clips, for CPU tests.
# The data paths are placeholders: tests pass real ones through
# ``--cfg-options train_dataloader.dataset.ann_file=... \
#   train_dataloader.dataset.data_prefix.video=...`` (and the same keys of
# ``test_dataloader`` for ``tools/test.py``).
_base_ = [
    'mmaction::_base_/models/slowonly_r50.py',
    'mmaction::_base_/default_runtime.py',
]

custom_imports = dict(imports=['mmbodvcl'], allow_failed_imports=False)

model = dict(
    backbone=dict(depth=18, base_channels=8, pretrained=None),
    cls_head=dict(in_channels=64, num_classes=2, dropout_ratio=0.0))

train_pipeline = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=4, frame_interval=2, num_clips=1),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]

train_dataloader = dict(
    batch_size=2,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='VideoDataset',
        ann_file='data/tiny_videos/ann.txt',
        data_prefix=dict(video='data/tiny_videos'),
        pipeline=train_pipeline))

test_pipeline = [
    dict(type='DecordInit'),
    dict(
        type='SampleFrames',
        clip_len=4,
        frame_interval=2,
        num_clips=1,
        test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(32, 32), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]

test_dataloader = dict(
    batch_size=1,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='VideoDataset',
        ann_file='data/tiny_videos/ann.txt',
        data_prefix=dict(video='data/tiny_videos'),
        pipeline=test_pipeline,
        test_mode=True))
test_evaluator = dict(type='AccMetric')
test_cfg = dict(type='TestLoop')

train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=1, val_interval=1)
val_cfg = None
val_dataloader = None
val_evaluator = None

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4))

default_hooks = dict(
    logger=dict(type='LoggerHook', interval=1),
    checkpoint=dict(type='CheckpointHook', interval=1))

randomness = dict(seed=0)
