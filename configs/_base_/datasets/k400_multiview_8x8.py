# Kinetics-400 for pretraining: rho = 2 views of 8 frames at interval 8
# (Slow-R50 "8x8") at independent random positions of each video, one decode,
# then the augmentation of [1] (Feichtenhofer et al., 2021) drawn per view.
# Labels of the annotation file are ignored. Data preparation:
# docs/datasets.md (MMAction2's VideoDataset format, `path label` lines).
#
# The only copy of the pretraining pipeline: variants (16x4, rho = 4, 112 px)
# change it in place, e.g. rho = 4:
#     train_pipeline = _base_.train_pipeline
#     train_pipeline[1].update(num_views=4)  # the sampler
#     train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
# (train_pipeline[3].transforms[1] is the Resize). The loader must be given
# the changed list again: it holds its own copy once the base is loaded.
dataset_type = 'MultiViewVideoDataset'
data_root = 'data/kinetics400/videos_train'
ann_file_train = 'data/kinetics400/kinetics400_train_list_videos.txt'

train_pipeline = [
    dict(type='MultiViewDecordInit'),
    dict(
        type='MultiViewSampleFrames',
        clip_len=8,
        frame_interval=8,
        num_views=2),
    dict(type='MultiViewDecordDecode'),
    # one random draw per view, shared by all its frames
    dict(
        type='MultiViewAugment',
        transforms=[
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
        ]),
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
