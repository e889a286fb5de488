"""``PreemptionHook``: checkpoint and exit when the cluster asks, resume
exactly.

Slurm sends SIGTERM before it kills a job (time limit, preemption) and, with
``--signal=USR1@<seconds>``, SIGUSR1 ahead of time. The hook catches them,
finishes the running iteration, saves ``iter_<n>.pth`` (pointed to by
``last_checkpoint``, so ``--resume`` finds it) and exits with ``128 +
signal``. It also keeps the random number generators in every checkpoint
and, on resume, restores them and skips the part of an epoch already
trained, so the resumed run continues as the uninterrupted one would.
"""
import itertools
import logging
import os.path as osp
import random
import signal
import threading
from typing import Callable, Dict, Optional, Sequence

import numpy as np
import torch
from mmengine.dist import all_reduce, get_world_size, is_main_process
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop
from torch.utils.data import Sampler


def _rng_state() -> Dict[str, object]:
    state: Dict[str, object] = dict(
        torch=torch.get_rng_state(),
        numpy=np.random.get_state(),
        python=random.getstate())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Dict[str, object]) -> None:
    torch.set_rng_state(state['torch'])
    np.random.set_state(state['numpy'])
    random.setstate(state['python'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


class _RestoreBeforeNext:
    """Iterator proxy that calls ``on_start`` once, right before the
    ``after``-th item (counted from 0) is fetched."""

    def __init__(self, iterator, after: int,
                 on_start: Callable[[], None]) -> None:
        self.iterator = iterator
        self.after = after
        self.on_start: Optional[Callable[[], None]] = on_start
        self.calls = 0

    def __iter__(self):
        return self

    def __next__(self):
        if self.on_start is not None and self.calls == self.after:
            self.on_start()
            self.on_start = None
        self.calls += 1
        return next(self.iterator)


class _SkipFirst(Sampler):
    """One pass of ``sampler`` without its first ``skip`` indices;
    ``on_start`` runs when the pass starts (after the data loader drew its
    worker seed, before the first sample is loaded)."""

    def __init__(self, sampler: Sampler, skip: int,
                 on_start: Callable[[], None]) -> None:
        self.sampler = sampler
        self.skip = skip
        self.on_start = on_start

    def __iter__(self):
        indices = iter(self.sampler)
        self.on_start()
        return itertools.islice(indices, self.skip, None)

    def __len__(self) -> int:
        return max(len(self.sampler) - self.skip, 0)


@HOOKS.register_module()
class PreemptionHook(Hook):
    """Save a checkpoint at the next iteration boundary on a signal, exit,
    and make ``--resume`` continue bit-exactly.

    * On any of ``signals`` (in the main thread; by default SIGTERM and
      SIGUSR1) the handler only records it; after the running iteration the
      ranks agree (all-reduce), save ``iter_<n>.pth`` in ``work_dir``, point
      ``last_checkpoint`` at it, log what happened and raise
      ``SystemExit(128 + signal)``.
    * Every checkpoint gets rank 0's random states (torch, CUDA, numpy,
      Python) under ``rng_state``. On resume they are restored on every rank
      (ranks share one seed unless ``randomness.diff_rank_seed``, which is
      then not reproduced) right before the first batch after the
      checkpoint is loaded, and a mid-epoch checkpoint of an epoch-based
      loop resumes at its batch (the sampler skips the trained indices
      without loading them; iteration-based loops re-load them, MMEngine's
      "advance"). Data augmentation drawn inside data-loader workers
      (``num_workers > 0``) restarts from the workers' seeds, so it is
      reproduced at epoch boundaries, or with ``num_workers=0``.

    Args:
        signals: names of the signals to catch.
    """
    priority = 'LOWEST'  # after every other hook saw the iteration

    def __init__(self, signals: Sequence[str] = ('SIGTERM', 'SIGUSR1')):
        self.signals = []
        for name in signals:
            if not hasattr(signal.Signals, str(name)):
                raise ValueError(
                    f'PreemptionHook: unknown signal {name!r}; expected names '
                    "such as 'SIGTERM', 'SIGUSR1'")
            self.signals.append(signal.Signals[name])
        self._received = 0
        self._previous: Dict[int, object] = {}
        self._resumed: Optional[dict] = None
        self._restore: Optional[dict] = None
        self._original_sampler: Optional[Sampler] = None

    # ------------------------------------------------------------ signals
    def _on_signal(self, signum: int, frame) -> None:
        self._received = signum  # the iteration finishes first

    def before_train(self, runner) -> None:
        if threading.current_thread() is not threading.main_thread():
            print_log(
                'PreemptionHook: not in the main thread, cannot catch '
                'signals', logger='current', level=logging.WARNING)
        else:
            for sig in self.signals:
                self._previous[sig] = signal.signal(sig, self._on_signal)
        self._arm_resume(runner)

    def after_train(self, runner) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _agreed_signal(self) -> int:
        if get_world_size() == 1:
            return self._received
        flag = torch.tensor([float(self._received)])
        all_reduce(flag, op='max')
        return int(flag.item())

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        signum = self._agreed_signal()
        if not signum:
            return
        filename = f'iter_{runner.iter + 1}.pth'
        runner.save_checkpoint(runner.work_dir, filename, by_epoch=False)
        path = osp.join(runner.work_dir, filename)
        if is_main_process():
            with open(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
                f.write(path)
        name = signal.Signals(signum).name
        print_log(
            f'PreemptionHook: received {name}; saved {path} after iteration '
            f'{runner.iter + 1} (epoch {runner.epoch + 1}) and exiting. '
            'Continue by running the same command with `--resume` (same '
            'work_dir).',
            logger='current',
            level=logging.WARNING)
        raise SystemExit(128 + signum)

    # ------------------------------------------------------ random state
    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['rng_state'] = _rng_state()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        # Loading for fine-tuning (load_from) also lands here; before_train
        # tells a resume by the iteration the loop continues from.
        self._resumed = dict(
            iter=checkpoint.get('meta', {}).get('iter'),
            rng_state=checkpoint.get('rng_state'))

    def _arm_resume(self, runner) -> None:
        """Restore the random states right before the first batch after
        the checkpoint is loaded, as the uninterrupted run loaded it."""
        resumed, self._resumed = self._resumed, None
        self._restore = None
        if (not resumed or resumed['iter'] != runner.iter
                or runner.iter == 0 or resumed['rng_state'] is None):
            return
        state = resumed['rng_state']
        if isinstance(runner.train_loop, EpochBasedTrainLoop):
            done = runner.iter - runner.epoch * len(runner.train_dataloader)
            self._restore = dict(state=state, done=done)
        else:
            # Iteration-based loops re-load ("advance") the trained batches
            # through this iterator first.
            loop = runner.train_loop
            loop.dataloader_iterator = _RestoreBeforeNext(
                loop.dataloader_iterator, runner.iter,
                lambda: _set_rng_state(state))

    def before_train_epoch(self, runner) -> None:
        restore, self._restore = self._restore, None
        if not restore:
            return
        if not restore['done']:  # an epoch boundary: before the loader
            _set_rng_state(restore['state'])
            return
        batch_sampler = getattr(runner.train_dataloader, 'batch_sampler',
                                None)
        if batch_sampler is None or not hasattr(batch_sampler, 'sampler'):
            raise RuntimeError(
                'PreemptionHook: cannot resume in the middle of an epoch: '
                'the train dataloader has no batch_sampler.sampler to skip '
                'the trained samples with')
        self._original_sampler = batch_sampler.sampler
        batch_sampler.sampler = _SkipFirst(
            batch_sampler.sampler, restore['done'] * batch_sampler.batch_size,
            lambda: _set_rng_state(restore['state']))

    def after_train_epoch(self, runner) -> None:
        if self._original_sampler is not None:
            runner.train_dataloader.batch_sampler.sampler = \
                self._original_sampler
            self._original_sampler = None
