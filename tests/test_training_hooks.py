"""``AfterOptimStepHook`` and the guard against forgetting it, through
MMEngine's Runner on a tiny V-BYOL (momentum encoder) and the in-memory
synthetic videos."""
import os.path as osp
import uuid

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmbodvcl  # noqa: F401  (registration)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))


pytestmark = pytest.mark.usefixtures('mmaction_scope')


def _cfg(work_dir: str, iters: int, hooks: list, **wrapper) -> Config:
    cfg = Config.fromfile(
        osp.join(REPO, 'configs/synthetic/vsimclr_slowonly-r18-tiny_'
                 'synthetic-i.py'))
    cfg.model.type = 'VBYOL'
    cfg.model.update(base_momentum=0.99)
    cfg.model.head = dict(
        type='BYOLPredictionHead', in_channels=16, hidden_channels=16,
        out_channels=16)
    cfg.model.backbone.base_channels = 4
    cfg.model.neck.update(in_channels=32, hid_channels=16, out_channels=16)
    # MMEngine's iteration loop sleeps 2 s whenever a finite sampler's
    # epoch ends (every second iteration here); the infinite one never ends
    cfg.train_dataloader.update(
        batch_size=2, num_workers=0, persistent_workers=False,
        sampler=dict(type='InfiniteSampler', shuffle=True))
    cfg.train_dataloader.dataset.update(num_samples=4, size=16)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=iters)
    cfg.param_scheduler = []
    cfg.optim_wrapper.update(wrapper)
    cfg.custom_hooks = hooks
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=-1)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=iters)
    cfg.work_dir = work_dir
    # Runners built in the same second would share a MessageHub otherwise.
    cfg.experiment_name = uuid.uuid4().hex
    cfg.randomness = dict(seed=0)
    cfg.log_level = 'WARNING'
    return cfg


def test_hook_updates_after_each_optimiser_step(tmp_path):
    """With accumulation over 2 iterations the optimiser steps every second
    iteration, and so does the momentum encoder."""
    runner = Runner.from_cfg(
        _cfg(str(tmp_path), 4, [dict(type='AfterOptimStepHook')],
             accumulative_counts=2))
    online = [p.detach().clone() for p in runner.model.backbone.parameters()]
    runner.train()
    assert int(runner.model.target_net.steps) == 2
    target = runner.model.target_net.module[0]
    # The EMA followed the online encoder away from its initial weights.
    assert any(not torch.equal(p, q)
               for p, q in zip(online, target.parameters()))


def test_forgotten_hook_fails_loudly_not_silently(tmp_path):
    # A few steps without the hook are fine (single-iteration tests, the
    # first steps after a resume, gradient accumulation); 100 training
    # objectives in a row are refused.
    Runner.from_cfg(_cfg(str(tmp_path / 'one'), 1, [])).train()
    runner = Runner.from_cfg(_cfg(str(tmp_path / 'many'), 102, []))
    with pytest.raises(RuntimeError, match="type='AfterOptimStepHook'"):
        runner.train()
    assert runner.iter == 100  # the 101st step was the first refused
