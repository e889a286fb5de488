"""Train a model with MMEngine's Runner; MMAction2 1.2.0's command line.

Differences from ``mmaction2/tools/train.py``: ``import mmbodvcl`` comes
first, so the stack's compatibility fixes apply even to configs without
``custom_imports``, and ``--amp`` also supports ``BiLevelOptimWrapper``.
"""
import argparse

import mmbodvcl  # noqa: F401  (compatibility fixes, then registration)
from mmengine.config import Config, ConfigDict

from mmbodvcl.apis.runner_cli import (add_runner_args, build_runner,
                                      parse_runner_args,
                                      process_group_closed_at_exit,
                                      set_work_dir)

# Wrappers that ``--amp`` turns into ``AmpOptimWrapper`` (MMEngine's own).
STOCK_OPTIM_WRAPPERS = ('OptimWrapper', 'AmpOptimWrapper')
# Wrappers that own their steps and switch autocast on via ``use_amp``.
AMP_FLAG_OPTIM_WRAPPERS = ('BiLevelOptimWrapper', )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description='Train a action recognizer')
    parser.add_argument('config', help='train config file path')
    parser.add_argument('--work-dir', help='the dir to save logs and models')
    parser.add_argument(
        '--resume',
        nargs='?',
        type=str,
        const='auto',
        help='If specify checkpoint path, resume from it, while if not '
        'specify, try to auto resume from the latest checkpoint '
        'in the work directory.')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='enable automatic-mixed-precision training')
    parser.add_argument(
        '--no-validate',
        action='store_true',
        help='whether not to evaluate the checkpoint during training')
    parser.add_argument(
        '--auto-scale-lr',
        action='store_true',
        help='whether to auto scale the learning rate according to the '
        'actual batch size and the original batch size.')
    parser.add_argument('--seed', type=int, default=None, help='random seed')
    parser.add_argument(
        '--diff-rank-seed',
        action='store_true',
        help='whether or not set different seeds for different ranks')
    parser.add_argument(
        '--deterministic',
        action='store_true',
        help='whether to set deterministic options for CUDNN backend.')
    add_runner_args(parser)
    return parse_runner_args(parser)


def enable_amp(optim_wrapper: ConfigDict) -> None:
    """Switch ``optim_wrapper`` (a config) to mixed precision in place.

    Raises:
        ValueError: for a wrapper type whose mixed-precision switch is
            unknown here.
    """
    wrapper_type = optim_wrapper.get('type', 'OptimWrapper')
    if wrapper_type in STOCK_OPTIM_WRAPPERS:
        optim_wrapper.type = 'AmpOptimWrapper'
        optim_wrapper.setdefault('loss_scale', 'dynamic')
    elif wrapper_type in AMP_FLAG_OPTIM_WRAPPERS:
        optim_wrapper.use_amp = True
    else:
        raise ValueError(
            f'--amp does not know how to enable mixed precision for '
            f'optim_wrapper.type={wrapper_type!r}; supported types are '
            f'{STOCK_OPTIM_WRAPPERS + AMP_FLAG_OPTIM_WRAPPERS}. Enable it '
            f'in the config instead of passing --amp.')


def merge_args(cfg: Config, args: argparse.Namespace) -> Config:
    """Merge CLI arguments to config."""
    if args.no_validate:
        cfg.val_cfg = None
        cfg.val_dataloader = None
        cfg.val_evaluator = None

    cfg.launcher = args.launcher
    set_work_dir(cfg, args)

    if args.amp:
        enable_amp(cfg.optim_wrapper)

    if args.resume == 'auto':
        cfg.resume = True
        cfg.load_from = None
    elif args.resume is not None:
        cfg.resume = True
        cfg.load_from = args.resume

    if args.auto_scale_lr:
        cfg.auto_scale_lr.enable = True

    if cfg.get('randomness', None) is None:
        cfg.randomness = dict(
            seed=args.seed,
            diff_rank_seed=args.diff_rank_seed,
            deterministic=args.deterministic)

    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)

    return cfg


def main() -> None:
    args = parse_args()
    cfg = merge_args(Config.fromfile(args.config), args)
    with process_group_closed_at_exit():
        build_runner(cfg).train()


if __name__ == '__main__':
    main()
