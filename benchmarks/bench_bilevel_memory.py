"""Which pass of a bi-level iteration sets the peak memory.

One configuration of ``benchmarks/bench_bilevel.py`` (same model, batch and
optimiser) in this process; the peak resident set size (``ru_maxrss``, on
CUDA ``max_memory_allocated``) is printed after every lower gradient, after
the upper gradient and after every iteration, so the step in the peak shows
the pass that set it. On CPU, glibc keeps freed large blocks for reuse
(its mmap threshold rises with each large free), which the peak RSS counts;
``MALLOC_MMAP_THRESHOLD_=131072`` in the environment returns them at once
and shows the live memory.

Usage: ``[MALLOC_MMAP_THRESHOLD_=131072] python
benchmarks/bench_bilevel_memory.py [--slow-r50] [--size 112] [--method
itd_fd|baseline|...] [--lower-batch 0.25] [--recompute] [--iters 3]
[--tiny]``.
"""
import argparse
import os.path as osp
import resource
import sys
import tempfile
import time

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_bilevel import METHODS, _batch, _Setup  # noqa: E402


def _peak_mib(device: str) -> float:
    if device == 'cuda':
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _report_passes(device: str) -> None:
    """Print the peak after each lower / upper gradient."""
    from mmbodvcl.functional.hypergrad.base import BilevelProblem
    for name in ('lower_gradient', 'upper_gradient'):
        original = getattr(BilevelProblem, name)

        def reported(self, *args, _original=original, _name=name,
                     **kwargs):
            result = _original(self, *args, **kwargs)
            print(f'  after {_name:<15} peak {_peak_mib(device):8.1f} MiB',
                  flush=True)
            return result

        setattr(BilevelProblem, name, reported)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--slow-r50', action='store_true')
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--clip-len', type=int, default=8)
    parser.add_argument('--method', default='itd_fd', choices=METHODS)
    parser.add_argument('--lower-batch', type=float, default=1.0)
    parser.add_argument('--recompute', action='store_true',
                        help="itd_fd's recompute=True")
    parser.add_argument('--iters', type=int, default=3)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--tiny', action='store_true',
                        help='a smoke run: 2 videos at 32 px, one '
                        'iteration, Slow-R50 at 1/8 width')
    args = parser.parse_args()
    if args.tiny:
        args.batch_size, args.size, args.iters = 2, 32, 1
    from mmengine.registry import init_default_scope

    import mmbodvcl  # noqa: F401
    from mmbodvcl.functional.hypergrad import ItdFd
    from checkout import make_video_dataset
    init_default_scope('mmaction')
    with tempfile.TemporaryDirectory() as videos:
        make_video_dataset(videos, num_videos=args.batch_size,
                           num_frames=max(24, 2 * args.clip_len + 4),
                           size=(48, 64) if args.size <= 64 else
                           (args.size + 16, args.size + 32))
        data = _batch(videos, args.batch_size, args.size, args.clip_len)
    setup = _Setup(args.method, argparse.Namespace(
        slow_r50=args.slow_r50, tiny=args.tiny, k=1, iterations=5), data,
        args.device, args.lower_batch)
    if args.recompute:
        setup.wrapper.hypergrad = ItdFd(lower_lr=1e-4, recompute=True)
    _report_passes(args.device)
    params = sum(p.numel() for p in setup.model.parameters()
                 if p.requires_grad)
    print(f'{setup.name}{" recompute" if args.recompute else ""}: '
          f'{params} trainable parameters ({params * 4 / 2**20:.1f} MiB); '
          f'built, peak {_peak_mib(args.device):.1f} MiB', flush=True)
    for iteration in range(args.iters):
        start = time.perf_counter()
        setup.step()
        print(f'iteration {iteration}: {time.perf_counter() - start:.1f} s, '
              f'peak {_peak_mib(args.device):.1f} MiB', flush=True)


if __name__ == '__main__':
    main()
