"""Run the synthetic experiments of the paper's section 5.5 (``make demo``).

Writes ``report.md``, ``results.json`` and PNG figures into ``--work-dir``.
Experiments 2 and 3 train ``configs/synthetic/`` with MMEngine's Runner;
``report.md`` gives the ``tools/sweep.py`` command that repeats them. The
defaults (one seed) fit in 15 minutes on 2 CPU cores; ``--seeds 3`` gives
three-seed means, ``--scale`` multiplies the training steps and the size
options make the clips larger (docs/synthetic.md).
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
                        help='training clips per scenario of experiment 1 '
                        '(the Runner runs render views on access)')
    parser.add_argument('--eval-clips', type=int, default=512,
                        help='evaluation clips (half train the probes)')
    parser.add_argument('--correlation', type=float, default=1.0,
                        help='strength of the scenario tie, in [0, 1]')
    parser.add_argument('--decoupling-scale', type=float, default=0.5,
                        help='multiply (on top of --scale) the iterations '
                        'of the runs experiment 3 adds (concepts, derived '
                        'inputs); 1 trains them as long as experiment 2')
    parser.add_argument('--seeds', type=int, default=1,
                        help='seeds of every Runner run (averaged)')
    parser.add_argument('--estimators', nargs='*', default=[],
                        help='Koopman estimators to compare (BOD-VCL runs '
                        'on scenario i), e.g. literal ridge cross_view')
    parser.add_argument('--xis', nargs='+', type=float, default=[],
                        help='split thresholds to probe (default: the '
                        'configs\' own), e.g. 0.05 0.1 0.2 0.3')
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='KEY=VALUE applied to every Runner run')
    parser.add_argument('--skip-experiment2', action='store_true',
                        help='only the two-stream experiment (no Runner '
                        'runs: experiments 2 and 3 are skipped)')
    parser.add_argument('--threads', type=int, default=2,
                        help='torch CPU threads')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args(argv)


def settings_from_args(args: argparse.Namespace) -> DemoSettings:
    for name in ('scale', 'decoupling_scale'):
        if getattr(args, name) <= 0:
            raise SystemExit(f"--{name.replace('_', '-')} must be > 0, got "
                             f'{getattr(args, name)}')
    if args.seeds < 1:
        raise SystemExit(f'--seeds must be >= 1, got {args.seeds}')
    base = DemoSettings()
    two_stream = replace(
        base.two_stream,
        steps=max(1, round(base.two_stream.steps * args.scale)),
        probe_every=max(1, round(base.two_stream.probe_every * args.scale)),
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
        decoupling_scenarios=() if skip else base.decoupling_scenarios,
        xis=tuple(args.xis),
        scale=args.scale,
        decoupling_scale=args.decoupling_scale,
        cfg_options=tuple(args.cfg_options),
        two_stream=two_stream,
        seed=args.seed)


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    settings = settings_from_args(args)
    run_demo(args.work_dir, settings,
             log=lambda message: print(message, flush=True))


if __name__ == '__main__':
    main(sys.argv[1:])
