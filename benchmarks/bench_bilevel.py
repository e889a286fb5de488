"""Per-iteration time and peak memory of BOD-VCL's bi-level step, per
hypergradient method, relative to the plain V-CL baseline, in one run.

V-SimCLR on a tiny ResNet3dSlowOnly (default) or Slow-R50 (``--slow-r50``),
one real multi-view batch decoded once from generated videos and reused.

* ``baseline``: plain V-CL, ``OptimWrapper`` on ``loss()`` (1 forward +
  1 backward).
* BOD-VCL (``decouple=True``) with ``first_order``, ``itd_fd`` (default),
  ``aid_fd``, ``aid_nmn``, ``aid_cg``, ``aid_minres`` and ``itd_rmad`` through
  ``BiLevelOptimWrapper``, each with the lower level on every fraction
  ``f`` of ``--lower-batch`` of the clips (the algorithm's ``lower_batch``;
  rows ``<method> f=<f>``, the plain ``<method>`` row for f = 1);
  ``itd_fd+recompute`` (only when asked for) is ITD-FD with
  ``recompute=True``.

Time: ONE process builds every configuration and runs them round-robin, one
training iteration of each in turn, each followed by single timed passes
(F + B of ``loss_lower`` and of ``loss_upper``, or of ``loss`` for the
baseline), so load changes on a shared machine hit all of them alike;
medians are reported. The pass-cost model prices a method's passes at those
single-pass times (the lower pass on the sub-batch): ``first_order`` k
lower + 1 upper, ``itd_fd`` 2k lower + 1 upper, ``aid_fd`` (k + 2) lower + 1
upper; ``measured / passes`` is the overhead of everything else (target <=
1.05).

Memory: each configuration in its own subprocess (warm-up iterations
only): peak resident set size (``ru_maxrss``) and its increase over the RSS
before the first step; on CUDA ``torch.cuda.max_memory_allocated``. On CPU
the subprocesses run with ``MALLOC_MMAP_THRESHOLD_=131072`` (unless the
environment sets it, or ``--default-allocator``): glibc then returns large
freed blocks at once, so the peak RSS follows the live tensors, as
``max_memory_allocated`` does on CUDA, instead of what the allocator kept
from earlier passes (which depends on the order of frees; docs/bilevel.md).

Usage: ``python benchmarks/bench_bilevel.py [--iters 5] [--slow-r50]
[--size 112] [--device cpu|cuda] [--methods baseline itd_fd
itd_fd+recompute ...] [--lower-batch 1 0.5 0.25] [--json out.json]
[--default-allocator] [--tiny]``.
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
from typing import Callable, Dict, List

METHODS = ['baseline', 'first_order', 'itd_fd', 'aid_fd', 'aid_nmn',
           'aid_cg', 'aid_minres', 'itd_rmad']
# Rows only on request: a method with an option.
VARIANTS = {'itd_fd+recompute': dict(type='itd_fd', recompute=True)}
# F + B passes of loss_lower per iteration (plus one of loss_upper) of the
# methods whose cost is a plain count of passes, for k lower steps.
LOWER_PASSES = {
    'first_order': lambda k: k,
    'itd_fd': lambda k: 2 * k,
    'itd_fd+recompute': lambda k: 3 * k,
    'aid_fd': lambda k: k + 2
}
# glibc returns freed blocks above this size to the system at once.
LIVE_MEMORY_ENV = {'MALLOC_MMAP_THRESHOLD_': '131072'}


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value <= 1.0:
        raise argparse.ArgumentTypeError(
            f'--lower-batch fractions must be in (0, 1], got {text}')
    return value


def config_name(method: str, lower_batch: float) -> str:
    """Row name: ``<method>``, or ``<method> f=<f>`` on a sub-batch."""
    return method if lower_batch == 1.0 else f'{method} f={lower_batch:g}'


def configurations(methods: List[str], fractions: List[float]):
    """``(method, f)`` of every row: the baseline once, each BOD-VCL
    method at every fraction."""
    for method in methods:
        for fraction in [1.0] if method == 'baseline' else fractions:
            yield method, fraction


def _rss_kib() -> float:
    with open('/proc/self/statm') as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf('SC_PAGE_SIZE') / 1024


def _model_cfg(slow_r50: bool, tiny: bool = False) -> dict:
    if slow_r50:
        # --tiny keeps Slow-R50's blocks and strides at 1/8 of its width.
        width = 8 if tiny else 64
        backbone = dict(type='ResNet3dSlowOnly', depth=50, pretrained=None,
                        pretrained2d=False, norm_eval=False,
                        base_channels=width)
        channels = 32 * width
    else:
        backbone = dict(type='ResNet3dSlowOnly', depth=18, base_channels=8,
                        pretrained=None, pretrained2d=False, norm_eval=False)
        channels = 64
    return dict(
        type='VSimCLR',
        backbone=backbone,
        neck=dict(type='PerFrameProjectionNeck', in_channels=channels,
                  hid_channels=64, out_channels=32, num_layers=2),
        head=dict(type='MultiViewContrastiveHead',
                  loss=dict(type='MultiViewInfoNCELoss', temperature=0.1)),
        data_preprocessor=dict(type='MultiViewDataPreprocessor',
                               mean=(123.675, 116.28, 103.53),
                               std=(58.395, 57.12, 57.375)))


def _batch(video_root: str, batch_size: int, size: int, clip_len: int):
    from mmengine.runner import Runner

    from checkout import multiview_pretrain_pipeline
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


class _Setup:
    """One configuration: model, optimiser wrapper, batch, timers."""

    def __init__(self, method: str, args, data, device: str,
                 lower_batch: float = 1.0) -> None:
        import torch
        from mmengine.optim import build_optim_wrapper

        from mmaction.registry import MODELS
        torch.manual_seed(0)
        bodvcl = method != 'baseline'
        self.method = method
        self.name = config_name(method, lower_batch)
        sub_batch = dict(lower_batch=lower_batch) if lower_batch < 1 else {}
        self.model = MODELS.build(dict(_model_cfg(args.slow_r50, args.tiny),
                                       decouple=bodvcl, **sub_batch)).to(
                                           device).train()
        optimizer = dict(type='SGD', lr=0.01, momentum=0.9)
        # A small gamma keeps every method in its convergent regime (see
        # docs/bilevel.md); the cost does not depend on it.
        hypergrad = dict(VARIANTS.get(method, dict(type=method)),
                         inner_steps=args.k, lower_lr=1e-4)
        if method in ('aid_nmn', 'aid_cg', 'aid_minres'):
            hypergrad['iterations'] = args.iterations
        wrapper_cfg = dict(
            type='BiLevelOptimWrapper',
            constructor='BiLevelOptimWrapperConstructor',
            optimizer=optimizer, hypergrad=hypergrad,
            clip_grad=dict(max_norm=10.0)) if bodvcl else dict(
                optimizer=optimizer, clip_grad=dict(max_norm=10.0))
        self.wrapper = build_optim_wrapper(self.model, wrapper_cfg)
        self.data = self.model.data_preprocessor.cast_data(data)
        self.processed = self.model.data_preprocessor(self.data, True)
        # The lower pass is timed on the clips the lower level sees.
        self.lower_processed = self.model.lower_sub_batch(
            self.processed, 0) if bodvcl else self.processed
        self.passes = ('loss_lower', 'loss_upper') if bodvcl else ('loss', )
        self.times: Dict[str, List[float]] = {
            name: []
            for name in ('iter', ) + self.passes
        }

    def step(self) -> None:
        self.model.train_step(self.data, self.wrapper)

    def time_pass(self, name: str, sync: Callable[[], None]) -> float:
        """Seconds of one forward + backward of ``model.<name>``."""
        import torch
        params = [p for p in self.model.parameters() if p.requires_grad]
        start = time.perf_counter()
        data = self.lower_processed if name == 'loss_lower' else \
            self.processed
        loss, _ = self.model.parse_losses(getattr(self.model, name)(**data))
        torch.autograd.grad(loss, params, allow_unused=True)
        sync()
        return time.perf_counter() - start


def _device(args) -> str:
    import torch
    if args.device:
        return args.device
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def _init(args):
    import torch
    from mmengine.registry import init_default_scope

    import mmbodvcl  # noqa: F401
    init_default_scope('mmaction')
    device = _device(args)
    sync = torch.cuda.synchronize if device == 'cuda' else (lambda: None)
    data = _batch(args.videos, args.batch_size, args.size, args.clip_len)
    return device, sync, data


def timing_worker(args) -> Dict[str, Dict[str, float]]:
    """All methods in this process, round-robin; medians per method."""
    device, sync, data = _init(args)
    setups = [
        _Setup(method, args, data, device, fraction)
        for method, fraction in configurations(args.methods, args.lower_batch)
    ]
    for _ in range(args.warmup):
        for setup in setups:
            setup.step()
    for _ in range(args.iters):
        for setup in setups:
            start = time.perf_counter()
            setup.step()
            sync()
            setup.times['iter'].append(time.perf_counter() - start)
            for name in setup.passes:
                setup.times[name].append(setup.time_pass(name, sync))
    rows = {}
    for setup in setups:
        row = {f'{k}_s': statistics.median(v) for k, v in setup.times.items()}
        if setup.method in LOWER_PASSES:
            row['passes_model_s'] = LOWER_PASSES[setup.method](
                args.k) * row['loss_lower_s'] + row['loss_upper_s']
        rows[setup.name] = row
    return rows


def memory_worker(args) -> Dict[str, float]:
    """One method in this process: peak memory over warm-up iterations."""
    import torch
    device, _, data = _init(args)
    setup = _Setup(args.method, args, data, device, args.lower_batch[0])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(max(args.warmup, 1)):
        setup.step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    result = dict(peak_rss_mib=peak / 1024,
                  rss_increase_mib=(peak - rss_before) / 1024)
    if device == 'cuda':
        result['cuda_peak_mib'] = torch.cuda.max_memory_allocated() / 2**20
    return result


def _parse_args():
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
                        help='Slow-R50 instead of the tiny ResNet3dSlowOnly')
    parser.add_argument('--device', choices=['cpu', 'cuda'],
                        help='default: cuda when available')
    parser.add_argument('--methods', nargs='+', default=METHODS,
                        choices=METHODS + list(VARIANTS))
    parser.add_argument('--lower-batch', type=_fraction, nargs='+',
                        default=[1.0],
                        help='fractions f of the clips the lower level '
                        'sees (one row per BOD-VCL method and f)')
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument('--default-allocator', action='store_true',
                        help='measure CPU memory under glibc\'s default '
                        'mmap threshold (peak RSS then includes freed '
                        'blocks the allocator kept)')
    parser.add_argument('--worker', choices=['timing', 'memory'],
                        help=argparse.SUPPRESS)
    parser.add_argument('--method', help=argparse.SUPPRESS)
    parser.add_argument('--videos', help=argparse.SUPPRESS)
    parser.add_argument('--tiny', action='store_true',
                        help='a smoke run: 2 videos at 32 px, one timed '
                        'iteration, no warm-up, of the requested methods '
                        'only itd_fd (the default) and its variants, the '
                        'last --lower-batch fraction, Slow-R50 at 1/8 '
                        'width')
    args = parser.parse_args()
    if args.tiny:
        from mmbodvcl.engine import DEFAULT_HYPERGRADIENT
        args.batch_size, args.size, args.iters, args.warmup = 2, 32, 1, 0
        args.methods = [m for m in args.methods
                        if m.split('+')[0] == DEFAULT_HYPERGRADIENT]
        args.lower_batch = args.lower_batch[-1:]
    return args


def _run_worker(args, worker: str, extra: List[str]) -> dict:
    forwarded = [
        f'--{k.replace("_", "-")}={v}' for k, v in vars(args).items()
        if k in ('iters', 'warmup', 'k', 'iterations', 'batch_size', 'size',
                 'clip_len') or (k == 'device' and v)
    ] + (['--slow-r50'] if args.slow_r50 else []) + (
        ['--tiny'] if args.tiny else [])
    cmd = [sys.executable, __file__, '--worker', worker, '--videos',
           args.videos] + forwarded + extra
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env=_worker_env(args, worker))
    if proc.returncode != 0:
        raise RuntimeError(f'benchmark {worker} worker {extra} failed:\n'
                           f'{proc.stderr[-3000:]}')
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _worker_env(args, worker: str) -> Dict[str, str]:
    env = dict(os.environ)
    if worker == 'memory' and not args.default_allocator:
        for key, value in LIVE_MEMORY_ENV.items():
            env.setdefault(key, value)
    return env


def main() -> None:
    args = _parse_args()
    if args.worker == 'timing':
        print(json.dumps(timing_worker(args)))
        return
    if args.worker == 'memory':
        print(json.dumps(memory_worker(args)))
        return

    from checkout import make_video_dataset
    load_before = os.getloadavg()
    start = time.time()
    with tempfile.TemporaryDirectory() as videos:
        make_video_dataset(videos, num_videos=args.batch_size,
                           num_frames=max(24, 2 * args.clip_len + 4),
                           size=(48, 64) if args.size <= 64 else
                           (args.size + 16, args.size + 32))
        args.videos = videos
        rows = _run_worker(args, 'timing', ['--methods'] + args.methods + [
            '--lower-batch'] + [str(f) for f in args.lower_batch])
        for method, fraction in configurations(args.methods,
                                               args.lower_batch):
            name = config_name(method, fraction)
            rows[name].update(_run_worker(args, 'memory', [
                '--method', method, '--lower-batch', str(fraction)]))
            print(f'{name}: {rows[name]}', file=sys.stderr, flush=True)
    meta = dict(load_before=load_before, load_after=os.getloadavg(),
                wall_s=time.time() - start, device=args.device or 'auto',
                allocator_env={
                    key: _worker_env(args, 'memory').get(key, 'unset')
                    for key in LIVE_MEMORY_ENV
                })
    _print_table(rows, args, meta)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(dict(rows=rows, meta=meta, args=vars(args)), f,
                      indent=1)


def _print_table(rows: Dict[str, Dict[str, float]], args, meta) -> None:
    base = rows.get('baseline')
    mem_key = 'cuda_peak_mib' if 'cuda_peak_mib' in next(
        iter(rows.values())) else 'rss_increase_mib'
    print(f'{"Slow-R50" if args.slow_r50 else "tiny R3D-18/8"} '
          f'k={args.k} iterations={args.iterations} '
          f'batch={args.batch_size} views=2 T={args.clip_len} '
          f'size={args.size} timed_iters={args.iters} '
          f'load average before {meta["load_before"][0]:.2f} after '
          f'{meta["load_after"][0]:.2f}, {meta["wall_s"]:.0f} s, memory '
          'workers with ' + ' '.join(
              f'{k}={v}' for k, v in meta['allocator_env'].items()))
    print(f'| method | s/iter | x baseline | passes s | x passes | '
          f'peak RSS MiB | x baseline | {mem_key} | x baseline |')
    print('|---|---|---|---|---|---|---|---|---|')
    for name, row in rows.items():
        ratio = row['iter_s'] / base['iter_s'] if base else float('nan')
        passes = row.get('passes_model_s')
        rss = row['peak_rss_mib'] / base['peak_rss_mib'] if base else float(
            'nan')
        mem = row[mem_key] / base[mem_key] if base and base[
            mem_key] > 0 else float('nan')
        print(f'| {name} | {row["iter_s"]:.3f} | {ratio:.2f} | '
              + (f'{passes:.3f} | {row["iter_s"] / passes:.3f} | '
                 if passes else '- | - | ')
              + f'{row["peak_rss_mib"]:.1f} | {rss:.2f} | '
              f'{row[mem_key]:.1f} | {mem:.2f} |')


if __name__ == '__main__':
    main()
