# Runtime shared by the pretraining configs: MMAction2's default runtime,
# plus the plugin import and checkpointing suited to 200-epoch pretraining
# without a validation loop.
_base_ = 'mmaction::_base_/default_runtime.py'

custom_imports = dict(imports=['mmbodvcl'], allow_failed_imports=False)

# Beside MMEngine's defaults: the model's post-step updates (momentum-encoder
# EMA, SwAV prototype normalisation) after every optimiser step, and a
# checkpoint-and-exit on SIGTERM / SIGUSR1 (Slurm's warnings before it kills
# or requeues a job) with an exact `--resume`. They are default hooks, not
# custom_hooks, so that a config can add custom hooks from another base
# (e.g. configs/_base_/knn_monitor_ucf101.py).
default_hooks = dict(
    logger=dict(interval=50),
    # no validation during pretraining, so nothing to pick a "best" by
    checkpoint=dict(interval=10, max_keep_ckpts=3, save_best=None),
    after_optim_step=dict(type='AfterOptimStepHook'),
    preemption=dict(type='PreemptionHook'))
