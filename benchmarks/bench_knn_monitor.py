"""What the kNN monitor costs a pretraining run, as a share of an epoch.

One MMEngine Runner per algorithm trains on generated videos (decord, real
multi-view data path) with ``KNNMonitorHook`` evaluating after every epoch,
and two timing hooks measure, per epoch, the training (``before_train_epoch``
to the first ``after_train_epoch`` hook) and the kNN evaluation (the hook's
``after_train_epoch``). The first epoch is warm-up; medians of the others.

Setup (the tests' tiny one): V-SimCLR on a narrow ResNet3dSlowOnly, 8-frame
clips at 32 px, two views; plain V-CL (``OptimWrapper``) and BOD-VCL
(``BiLevelOptimWrapper``, AID-FD). The kNN sets hold as many videos as the
pretraining set (``--videos`` each for the kNN bank and the queries, other
videos than the bank's, as a real monitor's train and val splits), so the
printed per-video ratio is ``kNN seconds per video / training seconds per
video``.

A real run's share per evaluation scales with the set sizes:
``ratio x (kNN train + val videos) / pretraining videos``, e.g. UCF-101
split 1 (9,537 + 3,783) against Kinetics-400 (~240,000), then divided by the
evaluation interval in epochs. The script prints that projection for the
``configs/_base_/knn_monitor_ucf101.py`` defaults (every 10 epochs); it
carries the tiny setup's compute ratio over to Slow-R50 at 224 px, which is
an assumption (the number of forward/backward passes per video is the same
for both, the relative decoding cost is not).

    python benchmarks/bench_knn_monitor.py [--videos 32 --epochs 4]

``--tiny`` (8 videos, batches of 4, 2 epochs) only checks that it runs.
"""
import argparse
import os.path as osp
import statistics
import tempfile
import time
from typing import Dict, List

from mmengine.hooks import Hook

UCF101_KNN_VIDEOS = 9537 + 3783  # split 1 train + test
K400_TRAIN_VIDEOS = 240000
INTERVAL = 10  # epochs, configs/_base_/knn_monitor_ucf101.py


class EpochClock(Hook):
    """Records ``perf_counter`` at its hook points; one instance runs first
    (``VERY_HIGH``) and one last (``LOWEST``) in ``after_train_epoch``."""

    def __init__(self, priority: str) -> None:
        self.priority = priority
        self.starts: List[float] = []
        self.ends: List[float] = []

    def before_train_epoch(self, runner) -> None:
        self.starts.append(time.perf_counter())

    def after_train_epoch(self, runner) -> None:
        self.ends.append(time.perf_counter())


def video_sets(root: str, num_videos: int) -> Dict[str, dict]:
    """Generated videos for pretraining, the kNN bank and the kNN queries:
    three disjoint sets (different seeds), so a query never finds itself in
    the bank."""
    from checkout import make_video_dataset
    sets = {}
    for offset, name in enumerate(('pretrain', 'knn_bank', 'knn_queries')):
        folder = osp.join(root, name)
        ann_file = make_video_dataset(
            folder,
            num_videos=num_videos,
            num_classes=4,
            num_frames=32,
            size=(48, 64),
            seed=1000 * offset)
        sets[name] = dict(ann_file=ann_file, data_prefix=dict(video=folder))
    return sets


def knn_loader(pipeline: List[dict], videos: dict) -> dict:
    return dict(
        batch_size=8,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='VideoDataset', pipeline=pipeline, test_mode=True,
            **videos))


def runner_cfg(args, sets: Dict[str, dict], bodvcl: bool) -> dict:
    from checkout import multiview_pretrain_pipeline
    clip = dict(clip_len=8, frame_interval=2)
    pipeline = [
        dict(type='DecordInit'),
        dict(type='SampleFrames', **clip, num_clips=1, test_mode=True),
        dict(type='DecordDecode'),
        dict(type='Resize', scale=(-1, 32)),
        dict(type='CenterCrop', crop_size=32),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs')
    ]
    optimizer = dict(type='SGD', lr=0.01, momentum=0.9)
    return dict(
        default_scope='mmaction',
        work_dir=tempfile.mkdtemp(),
        experiment_name=f'bench_knn_{bodvcl}_{time.time_ns()}',
        log_level='WARNING',
        model=dict(
            type='VSimCLR',
            decouple=bodvcl,
            backbone=dict(
                type='ResNet3dSlowOnly',
                depth=18,
                base_channels=8,
                pretrained=None,
                norm_eval=False),
            neck=dict(
                type='PerFrameProjectionNeck',
                in_channels=64,
                hid_channels=64,
                out_channels=32,
                num_layers=2),
            head=dict(
                type='MultiViewContrastiveHead',
                loss=dict(type='MultiViewInfoNCELoss', temperature=0.1)),
            data_preprocessor=dict(
                type='MultiViewDataPreprocessor',
                mean=(123.675, 116.28, 103.53),
                std=(58.395, 57.12, 57.375))),
        train_dataloader=dict(
            batch_size=args.batch_size,
            num_workers=0,
            drop_last=True,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(
                type='MultiViewVideoDataset',
                pipeline=multiview_pretrain_pipeline(2, size=32, **clip),
                **sets['pretrain'])),
        train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=args.epochs),
        optim_wrapper=dict(
            type='BiLevelOptimWrapper',
            optimizer=optimizer,
            hypergrad=dict(type='aid_fd', inner_steps=1, lower_lr=1e-4))
        if bodvcl else dict(optimizer=optimizer),
        default_hooks=dict(checkpoint=None, logger=None),
        custom_hooks=[
            dict(
                type='KNNMonitorHook',
                interval=1,
                splits=[
                    dict(
                        name='knn',
                        train=knn_loader(pipeline, sets['knn_bank']),
                        val=knn_loader(pipeline, sets['knn_queries']))
                ])
        ])


def measure(args, sets: Dict[str, dict],
            bodvcl: bool) -> Dict[str, float]:
    from mmengine.config import Config
    from mmengine.runner import Runner
    runner = Runner.from_cfg(Config(runner_cfg(args, sets, bodvcl)))
    first, last = EpochClock('VERY_HIGH'), EpochClock('LOWEST')
    runner.register_hook(first)
    runner.register_hook(last)
    runner.train()
    train = [e - s for s, e in zip(first.starts, first.ends)][1:]
    knn = [e - s for s, e in zip(first.ends, last.ends)][1:]
    epoch_s, knn_s = statistics.median(train), statistics.median(knn)
    return dict(
        epoch_s=epoch_s,
        knn_s=knn_s,
        share=knn_s / epoch_s,
        # kNN encodes 2 x videos (train and val); training 1 x
        per_video=knn_s / (2 * args.videos) / (epoch_s / args.videos))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--videos', type=int, default=32)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--epochs', type=int, default=4)
    parser.add_argument('--tiny', action='store_true',
                        help='8 videos, batches of 4, 2 epochs: a smoke run')
    args = parser.parse_args()
    if args.tiny:
        args.videos, args.batch_size, args.epochs = 8, 4, 2

    import torch
    from mmengine.registry import init_default_scope

    import mmbodvcl  # noqa: F401  (registration)
    torch.set_num_threads(1)
    init_default_scope('mmaction')
    sets = video_sets(tempfile.mkdtemp(), args.videos)
    print(f'{args.videos} pretraining videos / epoch, kNN on {args.videos} '
          f'bank + {args.videos} other query videos, {args.epochs - 1} '
          'timed epochs')
    print('| pretraining | epoch (s) | kNN eval (s) | share of an epoch | '
          'kNN/train time per video | projected: K400 + UCF-101 kNN every '
          f'{INTERVAL} epochs |')
    print('|---|---|---|---|---|---|')
    for name, bodvcl in (('V-SimCLR', False), ('BOD-VCL V-SimCLR', True)):
        r = measure(args, sets, bodvcl)
        projected = r['per_video'] * UCF101_KNN_VIDEOS / K400_TRAIN_VIDEOS
        print(f"| {name} | {r['epoch_s']:.2f} | {r['knn_s']:.2f} | "
              f"{100 * r['share']:.0f}% | {r['per_video']:.3f} | "
              f'{100 * projected:.2f}% per evaluation, '
              f'{100 * projected / INTERVAL:.2f}% per epoch |')


if __name__ == '__main__':
    main()
