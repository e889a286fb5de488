"""Run the synthetic experiments of the paper's section 5.5 (``make demo``).

Writes ``report.md``, ``results.json`` and PNG figures into ``--work-dir``.
The defaults (one seed) fit in 15 minutes on 2 CPU cores; ``--seeds 3``
gives the three-seed means of docs/synthetic.md, ``--scale`` multiplies the
training steps and the size options make the clips larger. For grids
through MMEngine's Runner see ``tools/sweep.py`` and ``docs/synthetic.md``.
"""
import argparse
import sys
from dataclasses import replace

import torch

import mmbodvcl  # noqa: F401  (compatibility fixes and registration)
from mmbodvcl.experiments.demo import DemoSettings, run_demo


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--work-dir', default='work_dirs/demo',
                        help='output folder')
    parser.add_argument('--scale', type=float, default=1.0,
                        help='multiply every run\'s training steps')
    parser.add_argument('--size', type=int, default=32,
                        help='frame height and width in pixels')
    parser.add_argument('--num-frames', type=int, default=8,
                        help='frames per clip')
    parser.add_argument('--train-clips', type=int, default=1024,
                        help='training clips per scenario')
    parser.add_argument('--eval-clips', type=int, default=512,
                        help='evaluation clips (half train the probes)')
    parser.add_argument('--correlation', type=float, default=1.0,
                        help='strength of the scenario tie, in [0, 1]')
    parser.add_argument('--seeds', type=int, default=1,
                        help='seeds of every experiment-2 run (averaged)')
    parser.add_argument('--estimators', nargs='*', default=[],
                        help='Koopman estimators to compare (BOD-VCL runs '
                        'on scenario i), e.g. literal ridge cross_view')
    parser.add_argument('--xis', nargs='+', type=float,
                        default=[0.05, 0.1, 0.2, 0.3],
                        help='split thresholds to probe')
    parser.add_argument('--skip-experiment2', action='store_true',
                        help='only the two-stream experiment')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch CPU threads')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    if args.scale <= 0:
        raise SystemExit(f'--scale must be > 0, got {args.scale}')
    if args.seeds < 1:
        raise SystemExit(f'--seeds must be >= 1, got {args.seeds}')
    base = DemoSettings()
    two_stream = replace(
        base.two_stream,
        steps=max(1, round(base.two_stream.steps * args.scale)),
        probe_every=max(1, round(base.two_stream.probe_every * args.scale)),
        seed=args.seed)
    end_to_end = replace(
        base.end_to_end,
        steps=max(1, round(base.end_to_end.steps * args.scale)),
        log_every=max(1, round(base.end_to_end.log_every * args.scale)),
        seed=args.seed)
    skip = args.skip_experiment2
    return replace(
        base,
        size=args.size,
        num_frames=args.num_frames,
        train_clips=args.train_clips,
        eval_clips=args.eval_clips,
        correlation=args.correlation,
        seeds=args.seeds,
        estimators=() if skip else tuple(args.estimators),
        end_to_end_scenarios=() if skip else base.end_to_end_scenarios,
        xis=tuple(args.xis),
        two_stream=two_stream,
        end_to_end=end_to_end,
        seed=args.seed)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = settings_from_args(args)
    run_demo(args.work_dir, settings,
             log=lambda message: print(message, flush=True))


if __name__ == '__main__':
    main(sys.argv[1:])
