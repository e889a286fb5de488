# Static and Dynamic Concepts (Qian et al., ECCV 2022; docs/concepts.md) on
# R(2+1)D-18, 16 frames at interval 4, 112 px, pretrained on UCF-101 (split 1
# train videos, labels ignored) for 200 epochs: Table 1's "R(2+1)D UCF-101"
# rows and Table 2. 8 GPUs x 12 videos = 96 per step (the authors' batch).
_base_ = '../_base_/default_runtime.py'

# Backbone as configs/downstream/_base_/models/r2plus1d_18.py (time kept at
# every stage), so the checkpoint loads there without missing keys.
model = dict(
    type='StaticDynamicConcepts',
    backbone=dict(
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
        temporal_strides=(1, 1, 1, 1),
        zero_init_residual=False),
    # a random frame of each clip repeated 16 times; the 15 differences of
    # adjacent frames
    decoupler=dict(type='DerivedInputDecoupler', static_frame='random'),
    head=dict(
        type='ConceptHead',
        in_channels=512,
        num_static=50,
        num_dynamic=50,
        projection=None,  # the paper's default g = identity
        recon_hid_channels=512,
        queue_len=0,
        # prototypes get no gradient in the first epoch (authors' code):
        # 9537 UCF-101 split-1 training videos in batches of 96
        freeze_prototypes_iters=99,
        align_loss=dict(
            type='ConceptAlignmentLoss',
            temperature=0.1,
            epsilon=0.05,
            sinkhorn_iters=3,
            loss_weight=1.0),
        sparsity_loss=dict(type='ConceptSparsityLoss', loss_weight=1.0),
        recon_loss=dict(type='ConceptReconstructionLoss', loss_weight=1.0),
        entropy_loss=None),
    local_contrast=dict(
        type='LocalConceptContrast',
        in_channels=512,
        embed_dim=512,
        top_ratio=0.1,
        attention_norm='locations',
        warmup_epochs=5,
        loss=dict(
            type='LocalConceptContrastLoss', margin=1.4, loss_weight=1.0)),
    data_preprocessor=dict(
        type='MultiViewDataPreprocessor',
        mean=(123.675, 116.28, 103.53),
        std=(58.395, 57.12, 57.375)))

# One clip per video (the paper; num_views=2 gives the authors' pairs). The
# augmentation of the authors' training script: crop of 50-100 % of the
# area (the CoCLR/DPC RandomSizedCrop it imports), flip, colour jitter
# 0.5/0.5/0.5/0.25 always, grey with p = 0.5, one draw per clip.
per_view_transforms = [
    dict(
        type='RandomResizedCrop',
        area_range=(0.5, 1.0),
        aspect_ratio_range=(3 / 4, 4 / 3)),
    dict(type='Resize', scale=(112, 112), keep_ratio=False),
    dict(type='Flip', flip_ratio=0.5),
    dict(
        type='VideoColorJitter',
        brightness=0.5,
        contrast=0.5,
        saturation=0.5,
        hue=0.25),
    dict(type='VideoRandomGrayscale', prob=0.5),
]
train_pipeline = [
    dict(type='MultiViewDecordInit'),
    dict(
        type='MultiViewSampleFrames',
        clip_len=16,
        frame_interval=4,
        num_views=1),
    dict(type='MultiViewDecordDecode'),
    dict(type='MultiViewAugment', transforms=per_view_transforms),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackMultiViewInputs'),
]
data_root = 'data/ucf101/videos'
ann_file_train = 'data/ucf101/ucf101_train_split_1_videos.txt'
train_dataloader = dict(
    batch_size=12,  # videos per GPU
    num_workers=8,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type='MultiViewVideoDataset',
        ann_file=ann_file_train,
        data_prefix=dict(video=data_root),
        pipeline=train_pipeline,
        on_error='resample'))

# The paper's optimiser values are lost from our copy; the authors' code:
# Adam, lr 1e-3, weight decay 1e-5, x0.1 at epochs 120 and 160 of 200.
max_epochs = 200
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-5,
                   betas=(0.9, 0.999)))
param_scheduler = [
    dict(
        type='MultiStepLR',
        by_epoch=True,
        begin=0,
        end=max_epochs,
        milestones=[120, 160],
        gamma=0.1)
]
train_cfg = dict(by_epoch=True, max_epochs=max_epochs)
auto_scale_lr = dict(enable=False, base_batch_size=96)
# MMEngine's DDP wrapper (AfterOptimStepHook of default_runtime.py runs the
# prototype renormalisation after every step), with unused parameters
# allowed: the local contrast's projections (warm-up) and the frozen
# prototypes get no gradient in the first epochs.
model_wrapper_cfg = dict(
    type='MMDistributedDataParallel', find_unused_parameters=True)
