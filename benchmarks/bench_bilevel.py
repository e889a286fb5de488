"""Per-iteration time and peak memory of BOD-VCL's bi-level step, per
hypergradient method, relative to the plain V-CL baseline, in one run.

Every configuration runs in its own subprocess (so peak memory is its own):
V-SimCLR on a tiny ResNet3dSlowOnly (CPU) or Slow-R50 (``--slow-r50``, GPU),
one real multi-view batch decoded once from generated videos and reused.

* ``baseline``: plain V-CL, ``OptimWrapper`` on ``loss()`` (1 forward +
  1 backward of the upper loss).
* BOD-VCL with ``first_order``, ``aid_fd`` (default), ``aid_nmn``,
  ``aid_cg`` and ``itd_rmad`` through ``BiLevelOptimWrapper``.

Memory: peak resident set size (``resource.getrusage(...).ru_maxrss``) of
the subprocess, and its increase over the RSS measured just before the
first training step (model, data and libraries loaded); on CUDA
``torch.cuda.max_memory_allocated``.

Pass-cost model for AID-FD (k lower steps): ``(k + 2)`` forward+backward
passes of ``loss_lower`` (k lower steps, 2 finite-difference gradients) and
one of ``loss_upper`` (first order: k and 1); each pass is timed alone in
the same subprocess, interleaved with the iterations, and the ratio
``measured / sum of passes`` of the medians is printed (target <= 1.1).

Usage: ``python benchmarks/bench_bilevel.py [--iters 5] [--slow-r50]``.
"""
import argparse
import json
import os
import os.path as osp
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

METHODS = ['baseline', 'first_order', 'aid_fd', 'aid_nmn', 'aid_cg',
           'itd_rmad']


def _rss_kib() -> float:
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 1024


def _model_cfg(slow_r50: bool) -> dict:
    if slow_r50:
        backbone = dict(type='ResNet3dSlowOnly', depth=50, pretrained=None,
                        pretrained2d=False, norm_eval=False)
        channels = 2048
    else:
        backbone = dict(type='ResNet3dSlowOnly', depth=18, base_channels=8,
                        pretrained=None, pretrained2d=False, norm_eval=False)
        channels = 64
    return dict(
        type='VSimCLR',
        backbone=backbone,
        neck=dict(type='KoopmanNeck', in_channels=channels,
                  hid_channels=64, out_channels=32, num_layers=2),
        head=dict(type='MultiViewContrastiveHead',
                  loss=dict(type='MultiViewInfoNCELoss', temperature=0.1)),
        data_preprocessor=dict(type='MultiViewDataPreprocessor',
                               mean=(123.675, 116.28, 103.53),
                               std=(58.395, 57.12, 57.375)))


def _batch(video_root: str, batch_size: int, size: int, clip_len: int):
    from mmengine.runner import Runner

    from mmbodvcl.testing import multiview_pretrain_pipeline
    loader = Runner.build_dataloader(
        dict(batch_size=batch_size, num_workers=0,
             sampler=dict(type='DefaultSampler', shuffle=False),
             dataset=dict(
                 type='MultiViewVideoDataset',
                 ann_file=osp.join(video_root, 'ann.txt'),
                 data_prefix=dict(video=video_root),
                 pipeline=multiview_pretrain_pipeline(
                     num_views=2, clip_len=clip_len, frame_interval=2,
                     size=size))))
    return next(iter(loader))


def _time_pass(model, processed, method: str, device_sync) -> float:
    """Seconds of one forward + backward of ``model.<method>``."""
    import torch
    params = [p for p in model.parameters() if p.requires_grad]
    start = time.perf_counter()
    loss, _ = model.parse_losses(getattr(model, method)(**processed))
    torch.autograd.grad(loss, params, allow_unused=True)
    device_sync()
    return time.perf_counter() - start


def worker(args) -> Dict[str, float]:
    import torch
    from mmengine.optim import build_optim_wrapper
    from mmengine.registry import init_default_scope

    import mmbodvcl  # noqa: F401
    from mmaction.registry import MODELS
    init_default_scope('mmaction')
    torch.manual_seed(0)
    device = 'cuda' if args.slow_r50 and torch.cuda.is_available() else 'cpu'
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    bodvcl = args.method != 'baseline'
    model = MODELS.build(dict(_model_cfg(args.slow_r50),
                              decouple=bodvcl)).to(device).train()
    optimizer = dict(type='SGD', lr=0.01, momentum=0.9)
    # A small gamma keeps every method in its convergent regime (see
    # docs/bilevel.md); the cost does not depend on it.
    wrapper_cfg = dict(
        type='BiLevelOptimWrapper', optimizer=optimizer,
        hypergrad=dict(type=args.method, inner_steps=args.k,
                       iterations=args.iterations, lower_lr=1e-4),
        clip_grad=dict(max_norm=10.0)) if bodvcl else dict(
            optimizer=optimizer, clip_grad=dict(max_norm=10.0))
    wrapper = build_optim_wrapper(model, wrapper_cfg)
    data = _batch(args.videos, args.batch_size, args.size, args.clip_len)
    if device == 'cuda':
        data = model.data_preprocessor.cast_data(data)

    result: Dict[str, float] = {}
    processed = model.data_preprocessor(data, True)
    rss_before = _rss_kib()
    for _ in range(args.warmup):
        model.train_step(data, wrapper)
    # Interleave iterations with single passes so that load changes on a
    # shared machine hit both alike; report medians.
    iters, lowers, uppers = [], [], []
    for _ in range(args.iters):
        start = time.perf_counter()
        model.train_step(data, wrapper)
        sync()
        iters.append(time.perf_counter() - start)
        lowers.append(_time_pass(model, processed, 'loss_lower', sync))
        uppers.append(_time_pass(model, processed, 'loss_upper', sync))
    result['iter_s'] = statistics.median(iters)
    result['pass_lower_s'] = statistics.median(lowers)
    result['pass_upper_s'] = statistics.median(uppers)
    # Passes each method needs, priced at the single-pass times.
    lower_passes = dict(first_order=args.k, aid_fd=args.k + 2)
    if args.method in lower_passes:
        result['passes_model_s'] = (lower_passes[args.method] *
                                    result['pass_lower_s'] +
                                    result['pass_upper_s'])
    result['peak_rss_mib'] = resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss / 1024
    result['rss_increase_mib'] = (resource.getrusage(
        resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    if device == 'cuda':
        result['cuda_peak_mib'] = torch.cuda.max_memory_allocated() / 2**20
    result['device'] = device
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--iters', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--k', type=int, default=1, help='lower steps')
    parser.add_argument('--iterations', type=int, default=5,
                        help='Neumann terms / CG iterations')
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--size', type=int, default=64)
    parser.add_argument('--clip-len', type=int, default=8)
    parser.add_argument('--slow-r50', action='store_true',
                        help='Slow-R50 on CUDA instead of the tiny CPU net')
    parser.add_argument('--methods', nargs='+', default=METHODS,
                        choices=METHODS)
    parser.add_argument('--method', help=argparse.SUPPRESS)
    parser.add_argument('--videos', help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.method:  # subprocess
        print(json.dumps(worker(args)))
        return

    from mmbodvcl.testing import make_video_dataset
    with tempfile.TemporaryDirectory() as videos:
        make_video_dataset(videos, num_videos=args.batch_size,
                           num_frames=max(24, 2 * args.clip_len + 4),
                           size=(48, 64))
        rows: Dict[str, Dict[str, float]] = {}
        for method in args.methods:
            cmd = [sys.executable, __file__, '--method', method, '--videos',
                   videos] + [
                       f'--{k.replace("_", "-")}={v}' for k, v in vars(
                           args).items() if k in ('iters', 'warmup', 'k',
                                                  'iterations', 'batch_size',
                                                  'size', 'clip_len')
                   ] + (['--slow-r50'] if args.slow_r50 else [])
            proc = subprocess.run(cmd, capture_output=True, text=True)
            if proc.returncode != 0:
                raise RuntimeError(f'benchmark worker {method!r} failed:\n'
                                   f'{proc.stderr[-3000:]}')
            rows[method] = json.loads(proc.stdout.strip().splitlines()[-1])
            print(f'{method}: {rows[method]}', file=sys.stderr, flush=True)
    _print_table(rows, args)


def _print_table(rows: Dict[str, Dict[str, float]], args) -> None:
    base = rows.get('baseline')
    mem_key = 'cuda_peak_mib' if 'cuda_peak_mib' in next(
        iter(rows.values())) else 'rss_increase_mib'
    print(f'device={next(iter(rows.values()))["device"]} '
          f'k={args.k} iterations={args.iterations} '
          f'batch={args.batch_size} views=2 T={args.clip_len} '
          f'size={args.size} timed_iters={args.iters}')
    header = (f'{"method":<12} {"s/iter":>8} {"x base":>7} '
              f'{"peak RSS MiB":>12} {"x base":>7} {mem_key + " ":>18}'
              f'{"x base":>7}')
    print(header)
    print('-' * len(header))
    lines: List[str] = []
    for method, row in rows.items():
        t_ratio = row['iter_s'] / base['iter_s'] if base else float('nan')
        rss_ratio = row['peak_rss_mib'] / base[
            'peak_rss_mib'] if base else float('nan')
        mem_ratio = row[mem_key] / base[mem_key] if base and base[
            mem_key] > 0 else float('nan')
        lines.append(f'{method:<12} {row["iter_s"]:>8.3f} {t_ratio:>7.2f} '
                     f'{row["peak_rss_mib"]:>12.1f} {rss_ratio:>7.2f} '
                     f'{row[mem_key]:>17.1f} {mem_ratio:>7.2f}')
    print('\n'.join(lines))
    for method, lower in (('first_order', args.k), ('aid_fd', args.k + 2)):
        row = rows.get(method)
        if row:
            print(f'{method} passes: {lower} x (fwd+bwd loss_lower '
                  f'{row["pass_lower_s"]:.3f}s) + 1 x (fwd+bwd loss_upper '
                  f'{row["pass_upper_s"]:.3f}s) = '
                  f'{row["passes_model_s"]:.3f}s; measured '
                  f'{row["iter_s"]:.3f}s/iter -> ratio '
                  f'{row["iter_s"] / row["passes_model_s"]:.3f}'
                  + (' (target <= 1.1)' if method == 'aid_fd' else ''))


if __name__ == '__main__':
    main()
