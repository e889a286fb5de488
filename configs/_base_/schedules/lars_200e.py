# The optimisation of [1] and of the paper (sec. 5.1): LARS (norm layers and
# biases excluded from the trust ratio and from weight decay), 35 warm-up
# epochs then cosine decay over 200 epochs, one single-level step per
# iteration. BOD-VCL makes the step bi-level with configs/_base_/bodvcl.py.
# Learning rates are for base_batch_size videos in total (16 GPUs x 8);
# enable auto_scale_lr (or `tools/train.py --auto-scale-lr`) on other sizes.
optimizer = dict(type='LARS', lr=2.4, momentum=0.9, weight_decay=1e-6)
# Normalisation layers and biases take plain momentum SGD without weight
# decay. custom_keys match parameter names by substring, for any depth:
# 'bn' is every BatchNorm of MMAction2's ResNets and S3D-G (ConvModule's
# `bn`, R(2+1)D's `bn_s`) and of our MLPs (`projector.bn{i}`,
# `predictor.bn0`), 'norm' every LayerNorm of the ViTs, 'bias' every bias
# (tests/test_configs.py checks that nothing else matches).
no_lars_no_decay = dict(decay_mult=0., lars_exclude=True)
paramwise_cfg = dict(
    custom_keys={
        key: no_lars_no_decay
        for key in ('bn', 'norm', 'bias')
    })
optim_wrapper = dict(
    type='OptimWrapper', optimizer=optimizer, paramwise_cfg=paramwise_cfg)
# Single-level training runs under MMEngine's own DDP wrapper; the model's
# post-step updates come from AfterOptimStepHook (default_runtime.py).

max_epochs = 200
warmup_epochs = 35
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=warmup_epochs,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=max_epochs - warmup_epochs,
        eta_min=0.,
        by_epoch=True,
        begin=warmup_epochs,
        end=max_epochs,
        convert_to_iter_based=True),
]
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs)

auto_scale_lr = dict(enable=False, base_batch_size=128)
