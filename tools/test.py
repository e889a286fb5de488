"""Test (and evaluate) a checkpoint; MMAction2 1.2.0's command line.

Differs from ``mmaction2/tools/test.py`` only in importing ``mmbodvcl``
first, so the stack's compatibility fixes apply to every config.
"""
import argparse

import mmbodvcl  # noqa: F401  (compatibility fixes, then registration)
from mmengine.config import Config

from mmbodvcl.apis.runner_cli import (add_runner_args, build_runner,
                                      parse_runner_args,
                                      process_group_closed_at_exit,
                                      set_work_dir)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='MMAction2 test (and eval) a model')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--dump',
        type=str,
        help='dump predictions to a pickle file for offline evaluation')
    parser.add_argument(
        '--show-dir',
        help='directory where the visualization images will be saved.')
    parser.add_argument(
        '--show',
        action='store_true',
        help='whether to display the prediction results in a window.')
    parser.add_argument(
        '--interval',
        type=int,
        default=1,
        help='visualize per interval samples.')
    parser.add_argument(
        '--wait-time',
        type=float,
        default=2,
        help='display time of every window. (second)')
    add_runner_args(parser)
    return parse_runner_args(parser)


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge CLI arguments to config."""
    if args.show or (args.show_dir is not None):
        if 'visualization' not in cfg.default_hooks:
            raise KeyError(
                '--show/--show-dir need a VisualizationHook: set '
                "default_hooks.visualization=dict(type='VisualizationHook') "
                f'in {args.config}.')
        cfg.default_hooks.visualization.enable = True
        cfg.default_hooks.visualization.show = args.show
        cfg.default_hooks.visualization.wait_time = args.wait_time
        cfg.default_hooks.visualization.out_dir = args.show_dir
        cfg.default_hooks.visualization.interval = args.interval

    if args.dump is not None:
        if not args.dump.endswith(('.pkl', '.pickle')):
            raise ValueError(
                f'--dump {args.dump!r}: the dump file must end with .pkl or '
                '.pickle.')
        dump_metric = dict(type='DumpResults', out_file_path=args.dump)
        if isinstance(cfg.test_evaluator, (list, tuple)):
            cfg.test_evaluator = list(cfg.test_evaluator)
            cfg.test_evaluator.append(dump_metric)
        else:
            cfg.test_evaluator = [cfg.test_evaluator, dump_metric]

    cfg.launcher = args.launcher
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    set_work_dir(cfg, args)

    cfg.load_from = args.checkpoint
    return cfg


def main() -> None:
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    with process_group_closed_at_exit():
        build_runner(cfg).test()


if __name__ == '__main__':
    main()
