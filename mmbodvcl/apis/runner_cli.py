"""Command-line pieces shared by tools/train.py and tools/test.py (MMAction2
1.2.0's command lines)."""
import argparse
import os
import os.path as osp
from contextlib import contextmanager
from typing import Iterator

import torch.distributed as dist
from mmengine.config import Config, DictAction
from mmengine.dist import is_distributed
from mmengine.runner import Runner

from mmaction.registry import RUNNERS


def add_runner_args(parser: argparse.ArgumentParser) -> None:
    """``--cfg-options``, ``--launcher`` and ``--local-rank``."""
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override some settings in the used config, the key-value pair '
        'in xxx=yyy format will be merged into config file. If the value to '
        'be overwritten is a list, it should be like key="[a,b]" or key=a,b '
        'It also allows nested list/tuple values, e.g. key="[(a,b),(c,d)]" '
        'Note that the quotation marks are necessary and that no white space '
        'is allowed.')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def parse_runner_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse, and export ``LOCAL_RANK`` for launchers that pass it as an
    argument."""
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def set_work_dir(cfg: Config, args: argparse.Namespace) -> None:
    """``work_dir`` in this priority: ``--work-dir`` > the config's > a
    folder named after the config under ``./work_dirs``."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])


def build_runner(cfg: Config) -> Runner:
    """MMEngine's Runner, or the config's ``runner_type``."""
    if 'runner_type' not in cfg:
        return Runner.from_cfg(cfg)
    return RUNNERS.build(cfg)


@contextmanager
def process_group_closed_at_exit() -> Iterator[None]:
    """Wait for every rank, then destroy the process group, when the run
    ends. A gloo worker thread frees the tensors of the last collective
    after the caller already has its result, and needs the GIL for that; a
    rank whose interpreter exits first kills the thread inside that
    destructor ('terminate called without an active exception', exit code
    -6), which fails the whole launch. The barrier hands the GIL over until
    all ranks are done. After an error the group is destroyed without it:
    the other ranks may never get there."""
    try:
        yield
        if is_distributed():
            dist.barrier()
    finally:
        if is_distributed():
            dist.destroy_process_group()
