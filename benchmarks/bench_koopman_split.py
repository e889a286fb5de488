"""Koopman split: reduced DMD against eig of the full M x M operator.

Run: ``python benchmarks/bench_koopman_split.py [--batches 50]``
(``--tiny``: a smoke run at a small size).

Table 1 times forward + backward of the static/dynamic split on batches of
``videos x views`` clips (64 x 2, T = 8, M = 128 by default), every fifth
batch degenerate (a quarter of its clips each constant, with duplicated
frames, all-zero and rank-1), and counts the batches whose outputs or
gradients contain a NaN/Inf. Times are medians, as ratios to the default
(reduced DMD, safe backward) measured in the same run.

Table 2 compares the L_pred estimators on features of a known linear system
plus a non-linear observable of weight ``eps`` (two views = two windows of one
trajectory): an informative L_pred is ~0 at eps = 0 and grows with eps.
"""
import argparse
import time
from typing import Callable, Dict, List

import numpy as np
import torch

from mmbodvcl.functional import (full_koopman_split, koopman_prediction_loss,
                                 koopman_split)


def random_batch(index: int, clips: int, dim: int, frames: int,
                 generator: torch.Generator) -> torch.Tensor:
    """``(clips, dim, frames)`` features of random 5-dimensional linear
    systems (one static mode, two damped rotations) plus 1e-3 noise; every
    fifth batch has degenerate clips."""

    def draw(*shape):
        return torch.randn(*shape, generator=generator)

    time_steps = torch.arange(frames, dtype=torch.float32)
    z = draw(clips, dim, 1) + 1e-3 * draw(clips, dim, frames)
    for _ in range(2):
        radius = 0.5 + 0.45 * torch.rand(clips, 1, 1, generator=generator)
        angle = 0.3 + 2.5 * torch.rand(clips, 1, 1, generator=generator)
        phase = 6.3 * torch.rand(clips, dim, 1, generator=generator)
        z = z + draw(clips, dim, 1) * radius**time_steps * torch.cos(
            angle * time_steps + phase)
    if index % 5 == 4:
        quarter = clips // 4
        constant, duplicated, zero = (slice(0, quarter // 2),
                                      slice(quarter, 2 * quarter),
                                      slice(2 * quarter, 3 * quarter))
        z[constant] = z[constant, :, :1]
        z[duplicated] = z[duplicated].repeat_interleave(2, -1)[..., :frames]
        z[zero] = 0
        rank_one = slice(3 * quarter, clips)
        z[rank_one] = (draw(clips - 3 * quarter, dim, 1) *
                       draw(clips - 3 * quarter, 1, frames))
    return z


def run_method(split_fn: Callable, batches: List[torch.Tensor],
               weights: torch.Tensor) -> Dict[str, object]:
    times, failures, statics, grads = [], 0, [], []
    for z in batches:
        z = z.clone().requires_grad_()
        start = time.perf_counter()
        result = split_fn(z)
        loss = ((result.static * weights).sum() +
                (result.dynamic * weights.flip(-1)).sum())
        try:
            grad = torch.autograd.grad(loss, z)[0]
        except RuntimeError:  # eig's backward refuses ill-posed cases
            grad = torch.full_like(z, float('nan'))
        times.append(time.perf_counter() - start)
        finite = all(
            torch.isfinite(t).all()
            for t in (result.static, result.dynamic, grad))
        failures += not finite
        statics.append(result.static.detach())
        grads.append(grad)
    largest = max((g.abs().max().item() for g in grads
                   if torch.isfinite(g).all()), default=float('nan'))
    return dict(time=float(np.median(times)), failures=failures,
                statics=statics, grads=grads, num_static=result.num_static,
                largest=largest, batches=len(batches))


def split_table(args: argparse.Namespace) -> None:
    generator = torch.Generator().manual_seed(0)
    clips = args.videos * args.views
    batches = [
        random_batch(i, clips, args.dim, args.frames, generator)
        for i in range(args.batches)
    ]
    weights = torch.randn(clips, args.dim, generator=generator)
    methods = {
        'reduced DMD, safe backward (default)':
        lambda z: koopman_split(z, spectral_grad='safe'),
        'reduced DMD, detached operator':
        lambda z: koopman_split(z, spectral_grad='detach'),
        'reduced DMD, native backward':
        lambda z: koopman_split(z, spectral_grad='native'),
        'eig of full M x M K, native backward': full_koopman_split,
    }
    full_name = 'eig of full M x M K, native backward'
    args.full_batches = min(args.full_batches or args.batches, args.batches)
    results = {
        name: run_method(fn, batches[:args.full_batches]
                         if name == full_name else batches, weights)
        for name, fn in methods.items()
    }
    base = results['reduced DMD, safe backward (default)']
    generic = [i for i in range(args.batches) if i % 5 != 4]
    print(f'\nKoopman split, {args.batches} batches of {args.videos} x '
          f'{args.views} clips, M = {args.dim}, T = {args.frames} '
          f'({args.batches - len(generic)} batches with degenerate clips), '
          f'{torch.get_num_threads()} CPU threads')
    header = (f"{'method':40s} {'median s':>9s} {'time ratio':>10s} "
              f"{'non-finite batches':>19s} {'max |dZ_A|':>11s} "
              f"{'max |dgrad|/|grad|':>19s} {'max |grad|':>11s}")
    print(header)
    print('-' * len(header))
    for name, result in results.items():
        compared = [i for i in generic if i < result['batches']]
        differences = [
            _relative_difference(result['statics'][i], base['statics'][i],
                                 relative=False) for i in compared
        ]
        grad_differences = [
            _relative_difference(result['grads'][i], base['grads'][i])
            for i in compared
        ]
        print(f"{name:40s} {result['time']:9.4f} "
              f"{result['time'] / base['time']:10.2f} "
              f"{result['failures']:>8d} / {result['batches']:<8d} "
              f'{max(differences):11.2e} {max(grad_differences):19.2e} '
              f"{result['largest']:11.2e}")
    print('max |dZ_A|, max |dgrad|/|grad|: against the default, over the '
          'batches without degenerate clips; max |grad|: over the batches '
          'with a finite gradient; static modes per clip in the last batch: '
          f"{base['num_static'].float().mean().item():.2f}. The full eig "
          f'runs on the first {args.full_batches} batches (--full-batches).')


def _relative_difference(value: torch.Tensor, reference: torch.Tensor,
                         relative: bool = True) -> float:
    difference = (value - reference).abs().max()
    if relative:
        difference = difference / reference.abs().max()
    return difference.nan_to_num(float('inf')).item()


def linear_views(eps: float, videos: int, dim: int, frames: int,
                 rng: np.random.Generator) -> List[torch.Tensor]:
    """Two windows of one trajectory of ``x' = A x`` (eigenvalues 1,
    0.9 exp(+-0.5i), 0.6), observed as ``E x + eps * F tanh(3 x)``."""
    eigvals = np.diag([1.0, 0.6])
    rotation = 0.9 * np.array([[np.cos(0.5), -np.sin(0.5)],
                               [np.sin(0.5), np.cos(0.5)]])
    block = np.block([[eigvals, np.zeros((2, 2))],
                      [np.zeros((2, 2)), rotation]])
    views = [[], []]
    for _ in range(videos):
        mixing = np.eye(4) + 0.3 * rng.standard_normal((4, 4))
        system = mixing @ block @ np.linalg.inv(mixing)
        embed = rng.standard_normal((dim, 4)) / np.sqrt(dim)
        lifted = rng.standard_normal((dim, 4)) / np.sqrt(dim)
        x = rng.standard_normal(4)
        trajectory = []
        for _ in range(2 * frames):
            trajectory.append(embed @ x + eps * lifted @ np.tanh(3 * x))
            x = system @ x
        trajectory = np.stack(trajectory, axis=1)
        offset = rng.integers(1, frames + 1)
        views[0].append(trajectory[:, :frames])
        views[1].append(trajectory[:, offset:offset + frames])
    return [torch.tensor(np.stack(v), dtype=torch.float32) for v in views]


def estimator_table(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(0)
    settings = {
        'literal': dict(estimator='literal'),
        'ridge 1e-3': dict(estimator='ridge', ridge=1e-3),
        'ridge 1e-1': dict(estimator='ridge', ridge=1e-1),
        'cross_view pinv': dict(estimator='cross_view', ridge=0.0),
        'cross_view ridge 1e-6': dict(estimator='cross_view', ridge=1e-6),
        'cross_view ridge 1e-4': dict(estimator='cross_view', ridge=1e-4),
        'cross_view ridge 1e-3': dict(estimator='cross_view', ridge=1e-3),
    }
    rows = {f'eps = {eps:g}': linear_views(eps, args.videos, args.dim,
                                           args.frames, rng)
            for eps in (0.0, 0.01, 0.1, 0.3, 1.0)}
    noise = torch.randn(2, args.videos, args.dim, args.frames,
                        generator=torch.Generator().manual_seed(1))
    rows['i.i.d. noise'] = list(noise.unbind(0))
    print('\nL_pred MSE / mean(z^2) on known linear systems plus a '
          f'non-linear observable of weight eps ({args.videos} videos, '
          f'2 views, M = {args.dim}, T = {args.frames})')
    header = f"{'features':14s}" + ''.join(f'{name:>23s}'
                                           for name in settings)
    print(header)
    print('-' * len(header))
    for row, views in rows.items():
        scale = torch.stack(views).square().mean()
        cells = [
            koopman_prediction_loss(views, **kwargs).mse / scale
            for kwargs in settings.values()
        ]
        print(f'{row:14s}' + ''.join(f'{cell.item():23.2e}'
                                     for cell in cells))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--batches', type=int, default=50)
    parser.add_argument('--videos', type=int, default=64)
    parser.add_argument('--views', type=int, default=2)
    parser.add_argument('--dim', type=int, default=128)
    parser.add_argument('--frames', type=int, default=8)
    parser.add_argument('--full-batches', type=int, default=0,
                        help='batches for the slow full eig (0: all)')
    parser.add_argument('--tables', nargs='+', default=['split', 'loss'],
                        choices=['split', 'loss'])
    parser.add_argument('--tiny', action='store_true',
                        help='5 batches (one degenerate) of 4 x 2 clips, '
                        'M = 16: a smoke run')
    args = parser.parse_args()
    if args.tiny:
        args.batches, args.videos, args.dim = 5, 4, 16
    if 'split' in args.tables:
        split_table(args)
    if 'loss' in args.tables:
        estimator_table(args)


if __name__ == '__main__':
    main()
