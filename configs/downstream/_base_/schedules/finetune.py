# Supervised finetuning of the whole network (paper, section 5.3), on top of
# MMAction2's default runtime. The paper does not state its finetuning
# hyper-parameters; these are MMAction2-style defaults (SGD, cosine decay
# after a linear warm-up), stated per GPU and scaled by ``--auto-scale-lr``.
_base_ = 'mmaction::_base_/default_runtime.py'

custom_imports = dict(imports=['mmbodvcl'], allow_failed_imports=False)

# The pretrained encoder: a checkpoint with ``backbone.*`` keys, written by
# tools/extract_backbone.py (a raw mmbodvcl pretraining checkpoint works too;
# its non-backbone keys are reported as unexpected and skipped). Override with
# ``--cfg-options load_from=PATH``; a missing file stops the run.
load_from = 'checkpoints/pretrained_backbone.pth'

train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=100, val_begin=1, val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=True, begin=0, end=5,
         convert_to_iter_based=True),
    dict(type='CosineAnnealingLR', T_max=95, eta_min=0, by_epoch=True,
         begin=5, end=100)
]

optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.01, momentum=0.9, weight_decay=1e-4),
    clip_grad=dict(max_norm=40, norm_type=2))

default_hooks = dict(
    checkpoint=dict(interval=5, max_keep_ckpts=3, save_best='auto'))

# lr above is for 8 GPUs x 8 videos.
auto_scale_lr = dict(enable=False, base_batch_size=64)
