# The synthetic experiment of the paper's section 5.5 through MMEngine's
# Runner: V-SimCLR on a small ResNet3dSlowOnly with a per-frame projection,
# trained on in-memory synthetic clips (mmbodvcl/datasets/synthetic.py) and
# probed on independent evaluation clips by SyntheticProbeHook, which writes
# the final probes to <work_dir>/synthetic_probe.json. Same components,
# sizes and optimiser as `make demo`'s experiment 2 (the control regime of
# docs/synthetic.md); tools/sweep.py runs grids of seeds and settings.
custom_imports = dict(
    imports=['mmbodvcl', 'mmbodvcl.experiments.probe_hook'],
    allow_failed_imports=False)
default_scope = 'mmaction'

num_frames = 8
frame_size = 32
base_channels = 8

model = dict(
    type='VSimCLR',
    backbone=dict(
        type='ResNet3dSlowOnly',
        depth=18,
        pretrained=None,
        base_channels=base_channels,
        # a temporal stem kernel: what lets the tiny backbone see motion
        conv1_kernel=(7, 3, 3),
        inflate=(0, 0, 1, 1),
        norm_eval=False),
    neck=dict(
        type='PerFrameProjectionNeck',
        in_channels=8 * base_channels,
        hid_channels=128,
        out_channels=32,
        num_layers=2),
    head=dict(
        type='MultiViewContrastiveHead',
        loss=dict(type='MultiViewInfoNCELoss', temperature=0.2)),
    data_preprocessor=dict(
        type='MultiViewDataPreprocessor',
        mean=[127.5, 127.5, 127.5],
        std=[64.0, 64.0, 64.0]))

train_dataloader = dict(
    batch_size=32,
    num_workers=2,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(
        type='SyntheticVideoDataset',
        num_samples=4096,
        scenario='i',  # 'ii' or 'iii' via --cfg-options
        correlation=1.0,
        num_frames=num_frames,
        size=frame_size,
        seed=1,
        view_mode='resample',
        num_views=2,
        pipeline=[
            dict(type='FormatShape', input_format='NCTHW'),
            dict(type='PackMultiViewInputs')
        ]))

max_iters = 300
train_cfg = dict(type='IterBasedTrainLoop', max_iters=max_iters)
# Constant learning rate, gradient clipped at norm 5 (as the demo).
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
    clip_grad=dict(max_norm=5.0))

custom_hooks = [
    dict(
        type='SyntheticProbeHook',
        interval=100,
        num_samples=512,
        num_frames=num_frames,
        size=frame_size,
        seed=100,
        xis=(0.05, 0.2)),
    # the model's post-step updates; checkpoint-and-exit on SIGTERM/SIGUSR1
    dict(type='AfterOptimStepHook'),
    dict(type='PreemptionHook'),
]
default_hooks = dict(
    runtime_info=dict(type='RuntimeInfoHook'),
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20, ignore_last=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', interval=max_iters, by_epoch=False),
    sampler_seed=dict(type='DistSamplerSeedHook'))
env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))
log_processor = dict(type='LogProcessor', window_size=20, by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
