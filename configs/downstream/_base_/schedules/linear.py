# Linear evaluation (paper, sections 3.1 and 5.3): the pretrained encoder is
# frozen (leaf configs set ``frozen_stages`` and ``norm_eval``) and only the
# linear classifier is trained. On top of MMAction2's default runtime; rates
# stated per GPU and scaled by ``--auto-scale-lr``.
_base_ = 'mmaction::_base_/default_runtime.py'

custom_imports = dict(imports=['mmbodvcl'], allow_failed_imports=False)

# The pretrained encoder: a checkpoint with ``backbone.*`` keys, written by
# tools/extract_backbone.py (a raw mmbodvcl pretraining checkpoint works too;
# its non-backbone keys are reported as unexpected and skipped). Override with
# ``--cfg-options load_from=PATH``; a missing file stops the run.
load_from = 'checkpoints/pretrained_backbone.pth'

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=60, val_begin=1, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='CosineAnnealingLR', T_max=60, eta_min=0, by_epoch=True,
         begin=0, end=60)
]

# No weight decay: the classifier is the only trained layer.
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.))

default_hooks = dict(
    checkpoint=dict(interval=5, max_keep_ckpts=3, save_best='auto'))

# lr above is for 8 GPUs x 8 videos.
auto_scale_lr = dict(enable=False, base_batch_size=64)
