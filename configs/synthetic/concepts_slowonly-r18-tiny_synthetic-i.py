# Static and Dynamic Concepts (docs/concepts.md) on synthetic scenario (i):
# the backbone, clips, batch and steps of _base_/synthetic_pretrain.py, one
# clip per video (the paper; a clip and its static frame / frame difference
# already form the pairs), 16 + 16 concepts for the 64 channels of the tiny
# backbone, the method's own optimiser (Adam 1e-3, the authors' code).
# SyntheticProbeHook probes the pooled backbone features and the clip's
# concept code (all, static and dynamic concepts).
_base_ = ['_base_/synthetic_pretrain.py']

feature_channels = 64  # 8 * base_channels of the base config's backbone
model = dict(
    _delete_=True,
    type='StaticDynamicConcepts',
    backbone=dict(
        type='ResNet3dSlowOnly',
        depth=18,
        pretrained=None,
        base_channels=8,
        conv1_kernel=(7, 3, 3),
        inflate=(0, 0, 1, 1),
        norm_eval=False),
    decoupler=dict(type='DerivedInputDecoupler', static_frame='random'),
    head=dict(
        type='ConceptHead',
        in_channels=feature_channels,
        num_static=16,
        num_dynamic=16,
        projection=None,
        recon_hid_channels=feature_channels,
        align_loss=dict(
            type='ConceptAlignmentLoss',
            temperature=0.1,
            epsilon=0.05,
            sinkhorn_iters=3)),
    local_contrast=dict(
        type='LocalConceptContrast',
        in_channels=feature_channels,
        embed_dim=feature_channels,
        # an iteration-based run: the warm-up in iterations (a sixth of
        # the run, as 5 of the paper's 200 epochs are a fortieth)
        warmup_epochs=0,
        warmup_iters=50),
    data_preprocessor=dict(
        type='MultiViewDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[64.0, 64.0, 64.0]))

train_dataloader = dict(dataset=dict(num_views=1))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='Adam', lr=1e-3, weight_decay=1e-5),
    clip_grad=dict(max_norm=5.0))
