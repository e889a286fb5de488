"""Data path: rho views with one decode vs the single-clip pipeline rho times.

Generates videos with ``tests/helpers.py`` (OpenCV mp4, decoded by decord),
then measures, side by side and interleaved in rounds, clips per second of

* ``multi-view``: ``multiview_pretrain_pipeline(rho)``: one open, one
  ``get_batch`` for the union of the rho clips' frames, rho augmentations;
* ``single x rho``: MMAction2's single-clip pipeline (``DecordInit``,
  a one-view sampler, ``DecordDecode``, the same per-clip augmentation,
  ``FormatShape``, ``PackActionInputs``) run rho times per video, so the
  video is opened and decoded rho times;

and the decode stage alone (open + sample + decode, no augmentation), where
the saving is made, including MMAction2's stock ``DecordDecode`` given the
same multi-view indices in view order (one ``get_batch``, unsorted, with
duplicates) to show what decoding the sorted union buys. A second table times
the per-view augmentation steps on one clip, including MMCV's image
``RandomGrayscale`` broadcast over the frames against ``VideoRandomGrayscale``.

    python benchmarks/bench_data_path.py [--videos 16 --frames 64 --rho 2 4]

``--tiny`` only checks that it runs.
"""
import argparse
import os.path as osp
import statistics
import tempfile
import time
from typing import Callable, Dict, List

import numpy as np
from mmcv.transforms import Compose
from mmengine.registry import init_default_scope

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import TRANSFORMS
from checkout import make_video, multiview_pretrain_pipeline


def build(steps: List[Dict]) -> Compose:
    return Compose([TRANSFORMS.build(step) for step in steps])


def pipelines(rho: int, clip_len: int, interval: int,
              size: int) -> Dict[str, Callable[[str], int]]:
    """Each entry maps a video file to the number of clips it produced."""
    multi = multiview_pretrain_pipeline(rho, clip_len, interval, size)
    per_clip_augment = multi[3]['transforms']
    single = [
        dict(type='DecordInit'),
        # A one-view sampler: MMAction2's train-mode SampleFrames pins the
        # clip at frame 0 when the video is only one clip span long, which
        # would spare the baseline the seeks that random positions cost.
        dict(
            type='MultiViewSampleFrames',
            clip_len=clip_len,
            frame_interval=interval,
            num_views=1),
        dict(type='DecordDecode'),
        *per_clip_augment,
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs'),
    ]
    stock_decode = [
        dict(type='DecordInit'), multi[1],
        dict(type='DecordDecode')
    ]
    multi_pipe, single_pipe = build(multi), build(single)
    multi_decode, single_decode = build(multi[:3]), build(single[:3])
    stock_decode_pipe = build(stock_decode)

    def info(path: str) -> Dict:
        return dict(filename=path, start_index=0, modality='RGB')

    def clips_of(out: Dict) -> int:
        if 'inputs' in out:  # packed: (clips, 3, T, H, W)
            return out['inputs'].shape[0]
        return len(out['imgs']) // clip_len

    def run_multi(pipe: Compose) -> Callable[[str], int]:
        return lambda path: clips_of(pipe(info(path)))

    def run_single(pipe: Compose) -> Callable[[str], int]:

        def run(path: str) -> int:
            return sum(clips_of(pipe(info(path))) for _ in range(rho))

        return run

    return {
        'multi-view (full)': run_multi(multi_pipe),
        'single x rho (full)': run_single(single_pipe),
        'multi-view decode': run_multi(multi_decode),
        'single x rho decode': run_single(single_decode),
        'stock DecordDecode, view order': run_multi(stock_decode_pipe),
    }


def measure(runs: Dict[str, Callable[[str], int]], videos: List[str],
            rounds: int) -> Dict[str, float]:
    """Median clips/s per entry over ``rounds`` interleaved passes, after
    one untimed warm-up pass of each."""
    for run in runs.values():
        run(videos[0])
    rates: Dict[str, List[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, run in runs.items():
            start = time.perf_counter()
            clips = sum(run(path) for path in videos)
            rates[name].append(clips / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def time_augmentations(clip_len: int, height: int, width: int, size: int,
                       repeats: int = 20) -> Dict[str, float]:
    """Milliseconds per clip of each per-view step (colour steps always on),
    interleaved over ``repeats`` rounds, median."""
    grayscale = dict(prob=1.0)
    steps = {
        'RandomResizedCrop + Resize': [
            dict(type='RandomResizedCrop', area_range=(0.2, 0.766)),
            dict(type='Resize', scale=(size, size), keep_ratio=False)
        ],
        'Flip': [dict(type='Flip', flip_ratio=1.0)],
        'VideoColorJitter': [
            dict(type='VideoColorJitter', brightness=0.6, contrast=0.6,
                 saturation=0.6, hue=0.15)
        ],
        'VideoRandomGrayscale':
        [dict(type='VideoRandomGrayscale', **grayscale)],
        'MMCV RandomGrayscale broadcast': [
            dict(
                type='TransformBroadcaster',
                mapping=dict(img='imgs'),
                auto_remap=True,
                share_random_params=True,
                transforms=[
                    dict(
                        type='RandomGrayscale',
                        keep_channels=True,
                        channel_weights=(0.299, 0.587, 0.114),
                        **grayscale)
                ])
        ],
    }
    pipes = {name: build(cfg) for name, cfg in steps.items()}
    rng = np.random.default_rng(0)
    full = [rng.integers(0, 256, (height, width, 3), np.uint8)
            for _ in range(clip_len)]
    small = [rng.integers(0, 256, (size, size, 3), np.uint8)
             for _ in range(clip_len)]
    times: Dict[str, List[float]] = {name: [] for name in pipes}
    for _ in range(repeats):
        for name, pipe in pipes.items():
            # Crop + resize see decoded frames, the rest training-size ones.
            frames = full if name.startswith('RandomResized') else small
            results = dict(imgs=[f.copy() for f in frames], modality='RGB',
                           img_shape=frames[0].shape[:2])
            start = time.perf_counter()
            pipe(results)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--videos', type=int, default=16)
    parser.add_argument('--frames', type=int, default=64)
    parser.add_argument('--height', type=int, default=128)
    parser.add_argument('--width', type=int, default=171)
    parser.add_argument('--clip-len', type=int, default=8)
    parser.add_argument('--interval', type=int, default=8)
    parser.add_argument('--size', type=int, default=112)
    parser.add_argument('--rho', type=int, nargs='+', default=[2, 4])
    parser.add_argument('--rounds', type=int, default=5)
    parser.add_argument('--tiny', action='store_true',
                        help='2 videos at 48x64, rho 2, one round: a '
                        'smoke run')
    args = parser.parse_args()
    if args.tiny:
        args.videos, args.rho, args.rounds = 2, [2], 1
        args.height, args.width, args.size = 48, 64, 32

    init_default_scope('mmaction')
    np.random.seed(0)
    with tempfile.TemporaryDirectory() as root:
        videos = [
            make_video(
                osp.join(root, f'video_{index:03d}.mp4'),
                num_frames=args.frames,
                size=(args.height, args.width),
                seed=index) for index in range(args.videos)
        ]
        print(f'{args.videos} videos of {args.frames} frames at '
              f'{args.height}x{args.width}; clips of {args.clip_len} frames '
              f'at interval {args.interval}; training size {args.size}; '
              f'median of {args.rounds} interleaved rounds.\n')
        print('| rho | pipeline | clips/s | vs single x rho |')
        print('|---|---|---|---|')
        for rho in args.rho:
            rates = measure(
                pipelines(rho, args.clip_len, args.interval, args.size),
                videos, args.rounds)
            for name, rate in rates.items():
                stage = 'decode' if 'decode' in name.lower() else 'full'
                base = rates[f'single x rho ({stage})'
                             if stage == 'full' else 'single x rho decode']
                print(f'| {rho} | {name} | {rate:.1f} | {rate / base:.2f}x |')

        print(f'\nPer-view augmentation, one clip of {args.clip_len} frames '
              f'(crop from {args.height}x{args.width}, the rest at '
              f'{args.size}x{args.size}), median ms:\n')
        print('| step | ms per clip |')
        print('|---|---|')
        for name, ms in time_augmentations(args.clip_len, args.height,
                                           args.width, args.size).items():
            print(f'| {name} | {ms:.2f} |')


if __name__ == '__main__':
    main()
