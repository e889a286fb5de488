# Kinetics-400 for pretraining: rho = 2 views of 8 frames at interval 8
# (Slow-R50 "8x8") at independent random positions of each video, one decode,
# then the augmentation of [1] (Feichtenhofer et al., 2021) drawn per view.
# Labels of the annotation file are ignored. Data preparation:
# docs/datasets.md (MMAction2's VideoDataset format, `path label` lines).
dataset_type = 'MultiViewVideoDataset'
data_root = 'data/kinetics400/videos_train'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'

# One random draw per view; every frame of a view shares it.
per_view_transforms = [
    dict(
        type='RandomResizedCrop',
        area_range=(0.2, 0.766),
        aspect_ratio_range=(3 / 4, 4 / 3)),
    dict(type='Resize', scale=(224, 224), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(
        type='RandomApply',
        transforms=[
            dict(
                type='VideoColorJitter',
                brightness=0.6,
                contrast=0.6,
                saturation=0.6,
                hue=0.15)
        ],
        prob=0.8),
    dict(type='VideoRandomGrayscale', prob=0.2),  # one draw per clip
]
train_pipeline = [
    dict(type='MultiViewDecordInit'),
    dict(
        type='MultiViewSampleFrames',
        clip_len=8,
        frame_interval=8,
        num_views=2),
    dict(type='MultiViewDecordDecode'),
    dict(type='MultiViewAugment', transforms=per_view_transforms),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackMultiViewInputs'),
]
train_dataloader = dict(
    batch_size=8,  # videos per GPU; each gives num_views clips
    num_workers=8,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline,
        # K400 copies usually hold a few undecodable or too short videos:
        # each one skipped is logged with its name and counted.
        on_error='resample'))
