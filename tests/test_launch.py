"""Command-line training as users run it: ``tools/train.py`` stopped by a
real signal and resumed, and ``tools/dist_train.sh`` on two "nodes".

The config is a tiny V-MoCo + BOD-VCL (bi-level ITD-FD step, momentum
encoder through ``AfterOptimStepHook``) on the in-memory synthetic videos,
which depend only on the sample index, so two runs see the same data.

* Preemption: a helper hook (written next to the config) pauses at a given
  iteration until the test has sent SIGUSR1 / SIGTERM to the training
  process, so the cut is deterministic. ``PreemptionHook`` saves at that
  iteration boundary and exits with 128 + signal; ``--resume`` finishes the
  run, whose final state dict must equal an uninterrupted run's
  (``torch.equal``), as must the random numbers drawn after the cut.
* Multi-node: ``NNODES=2 NODE_RANK=0|1 tools/dist_train.sh CONFIG 1`` (two
  launches on this host, gloo) against ``tools/dist_train.sh CONFIG 2``;
  final weights within 1e-5 relative (float summation order of the
  all-reduce); and SIGUSR1 to tools/dist_train.sh reaches the ranks.

About 2 minutes on 2 cores: every case starts real training processes.
"""
import os
import os.path as osp
import signal
import subprocess
import sys
import time
from typing import Dict, List

import pytest
import torch
from mmengine.config import Config

from helpers import free_port, launcher_env

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
ITERS_PER_EPOCH = 3

HELPER = '''
import json, os, time
import numpy as np
import torch
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class PauseForSignalHook(Hook):
    """Waits after iteration ``at`` until ``go`` exists; records the random
    numbers each iteration draws from torch and numpy."""
    priority = 'NORMAL'

    def __init__(self, at=0, marker='', go=''):
        self.at, self.marker, self.go = at, marker, go

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        draw = dict(iter=runner.iter, torch=torch.rand(1).item(),
                    numpy=float(np.random.rand()))
        with open(os.path.join(runner.work_dir, 'draws.jsonl'), 'a') as f:
            f.write(json.dumps(draw) + '\\n')

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        if runner.iter + 1 != self.at:
            return
        open(self.marker, 'w').close()
        deadline = time.time() + 120
        while not os.path.exists(self.go) and time.time() < deadline:
            time.sleep(0.02)
'''


def _config(tmp_path, by_epoch: bool, pause_at: int = 0) -> str:
    cfg = Config.fromfile(
        osp.join(REPO,
                 'configs/synthetic/bodvcl-vsimclr_slowonly-r18-tiny_'
                 'synthetic-i.py'))
    cfg.custom_imports = dict(
        imports=['mmbodvcl', 'pause_helper'], allow_failed_imports=False)
    cfg.model.type = 'VMoCo'
    cfg.model.update(base_momentum=0.99)
    cfg.model.head = dict(
        type='MoCoQueueHead', embed_dim=32, queue_len=16,
        loss=dict(type='QueueInfoNCELoss', temperature=0.2))
    cfg.model.backbone.base_channels = 4
    cfg.model.neck.in_channels = 32
    cfg.model.neck.hid_channels = 32
    cfg.train_dataloader.update(batch_size=4, num_workers=0,
                                persistent_workers=False)
    cfg.train_dataloader.dataset.update(num_samples=4 * ITERS_PER_EPOCH,
                                        size=32)
    cfg.optim_wrapper.hypergrad = dict(type='itd_fd', lower_lr=1e-3)
    total = 2 * ITERS_PER_EPOCH
    cfg.train_cfg = dict(by_epoch=True, max_epochs=2) if by_epoch else dict(
        type='IterBasedTrainLoop', max_iters=total)
    cfg.param_scheduler = [
        dict(type='CosineAnnealingLR', T_max=total, by_epoch=False)
    ]
    cfg.custom_hooks = [
        dict(type='AfterOptimStepHook'),
        dict(type='PreemptionHook'),
        dict(type='PauseForSignalHook', at=pause_at,
             marker=str(tmp_path / 'paused'), go=str(tmp_path / 'go')),
    ]
    cfg.default_hooks.checkpoint = dict(
        type='CheckpointHook', interval=total, by_epoch=False)
    cfg.default_hooks.logger = dict(type='LoggerHook', interval=1)
    cfg.log_processor = dict(by_epoch=by_epoch)
    cfg.randomness = dict(seed=0)
    cfg.env_cfg.dist_cfg = dict(backend='gloo')
    path = str(tmp_path / f'tiny_{pause_at}.py')
    cfg.dump(path)
    with open(tmp_path / 'pause_helper.py', 'w') as f:
        f.write(HELPER)
    return path


def _env(tmp_path) -> Dict[str, str]:
    return launcher_env(
        PYTHONPATH=os.pathsep.join([REPO, str(tmp_path)]),
        OMP_NUM_THREADS='1',
        MKL_NUM_THREADS='1')


def _train(tmp_path, config: str, work_dir: str, *extra: str,
           **popen_kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, osp.join(REPO, 'tools/train.py'), config,
         '--work-dir', work_dir, *extra],
        env=_env(tmp_path), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, **popen_kwargs)


def _finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, _ = proc.communicate(timeout=timeout)
    return out


def _final_state(work_dir: str) -> Dict[str, torch.Tensor]:
    path = osp.join(work_dir, f'iter_{2 * ITERS_PER_EPOCH}.pth')
    return torch.load(path, map_location='cpu')['state_dict']


def _draws(work_dir: str) -> Dict[int, dict]:
    import json
    with open(osp.join(work_dir, 'draws.jsonl')) as f:
        return {d['iter']: d for d in map(json.loads, f)}


@pytest.mark.parametrize('by_epoch,sig,cut', [
    (True, signal.SIGUSR1, ITERS_PER_EPOCH + 1),  # mid-epoch
    (False, signal.SIGTERM, ITERS_PER_EPOCH - 1),
])
def test_signal_saves_and_resume_is_exact(tmp_path, by_epoch, sig, cut):
    straight = str(tmp_path / 'straight')
    out = _finish(_train(tmp_path, _config(tmp_path, by_epoch), straight))
    assert osp.exists(osp.join(straight, f'iter_{2 * ITERS_PER_EPOCH}.pth')), \
        out[-3000:]

    config = _config(tmp_path, by_epoch, pause_at=cut)
    cut_dir = str(tmp_path / 'cut')
    proc = _train(tmp_path, config, cut_dir)
    deadline = time.time() + 240
    while not (tmp_path / 'paused').exists():
        assert proc.poll() is None and time.time() < deadline, \
            proc.communicate()[0][-3000:]
        time.sleep(0.05)
    proc.send_signal(sig)
    (tmp_path / 'go').touch()
    out = _finish(proc)
    assert proc.returncode == 128 + sig, out[-3000:]
    assert f'received {signal.Signals(sig).name}' in out
    assert osp.exists(osp.join(cut_dir, f'iter_{cut}.pth'))
    assert not osp.exists(osp.join(cut_dir, f'iter_{2 * ITERS_PER_EPOCH}.pth'))

    out = _finish(_train(tmp_path, config, cut_dir, '--resume'))
    want, got = _final_state(straight), _final_state(cut_dir)
    assert want.keys() == got.keys(), out[-3000:]
    for key in want:  # weights, momentum encoder, queues, BN statistics
        assert torch.equal(want[key], got[key]), key
    # The iterations after the cut drew the same random numbers.
    want, got = _draws(straight), _draws(cut_dir)
    for it in range(cut, 2 * ITERS_PER_EPOCH):
        assert want[it]['torch'] == got[it]['torch'], it
        if by_epoch:  # iteration loops re-load (advance) instead
            assert want[it]['numpy'] == got[it]['numpy'], it


def _dist_train(tmp_path, config: str, work_dir: str, procs: int,
                nodes: List[int], port: int) -> None:
    launches = []
    for node in nodes:
        env = dict(_env(tmp_path), NNODES=str(len(nodes)),
                   NODE_RANK=str(node), PORT=str(port),
                   MASTER_ADDR='127.0.0.1')
        launches.append(subprocess.Popen(
            ['bash', osp.join(REPO, 'tools/dist_train.sh'), config,
             str(procs), '--work-dir', work_dir],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True))
    for launch in launches:
        out = _finish(launch)
        assert launch.returncode == 0, out[-3000:]


def test_two_nodes_equal_two_processes_on_one_node(tmp_path):
    config = _config(tmp_path, by_epoch=False)
    cfg = Config.fromfile(config, import_custom_modules=False)
    cfg.model_wrapper_cfg = dict(type='ReducerFreeDataParallel')
    cfg.train_dataloader.batch_size = 2  # per process: 4 videos in total
    cfg.dump(config)
    one_node, two_nodes = str(tmp_path / 'one'), str(tmp_path / 'two')
    _dist_train(tmp_path, config, one_node, 2, [0], free_port())
    _dist_train(tmp_path, config, two_nodes, 1, [0, 1], free_port())
    want, got = _final_state(one_node), _final_state(two_nodes)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f'{key}: {m}')


def test_dist_train_turns_usr1_into_a_checkpoint(tmp_path):
    """torchrun ignores SIGUSR1; tools/dist_train.sh passes it on as
    SIGTERM, so both ranks save at the same iteration and stop."""
    config = _config(tmp_path, by_epoch=False, pause_at=2)
    cfg = Config.fromfile(config, import_custom_modules=False)
    cfg.model_wrapper_cfg = dict(type='ReducerFreeDataParallel')
    cfg.train_dataloader.batch_size = 2
    cfg.dump(config)
    work_dir = str(tmp_path / 'work')
    launch = subprocess.Popen(
        ['bash', osp.join(REPO, 'tools/dist_train.sh'), config, '2',
         '--work-dir', work_dir],
        env=dict(_env(tmp_path), PORT=str(free_port())),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    while not (tmp_path / 'paused').exists():
        assert launch.poll() is None and time.time() < deadline, \
            launch.communicate()[0][-3000:]
        time.sleep(0.05)
    launch.send_signal(signal.SIGUSR1)
    (tmp_path / 'go').touch()
    out = _finish(launch)
    assert launch.returncode != 0, out[-3000:]
    assert out.count('PreemptionHook: received SIGTERM') >= 1, out[-3000:]
    assert osp.exists(osp.join(work_dir, 'iter_2.pth'))
    last = f'iter_{2 * ITERS_PER_EPOCH}.pth'
    assert not osp.exists(osp.join(work_dir, last))


def _fake_srun(tmp_path, script: str, *args: str, **env: str) -> str:
    """Run ``tools/<script>`` with an ``srun`` that only records its
    arguments; returns them."""
    srun = tmp_path / 'srun'
    srun.write_text('#!/bin/sh\necho "$@" > "$SRUN_LOG"\n')
    srun.chmod(0o755)
    log = tmp_path / 'srun.log'
    environment = dict(os.environ, SRUN_LOG=str(log),
                       PATH=f'{tmp_path}{os.pathsep}{os.environ["PATH"]}',
                       **env)
    subprocess.run(['bash', osp.join(REPO, 'tools', script), *args],
                   env=environment, check=True, capture_output=True)
    return log.read_text().strip()


def test_slurm_scripts_pass_the_signal_and_the_arguments(tmp_path):
    train = _fake_srun(tmp_path, 'slurm_train.sh', 'part', 'job', 'cfg.py',
                       '--work-dir', 'w')
    assert '-p part' in train and '--job-name=job' in train
    assert '--signal=USR1@120' in train
    assert train.endswith('tools/train.py cfg.py --launcher=slurm '
                          '--work-dir w')
    quiet = _fake_srun(tmp_path, 'slurm_train.sh', 'p', 'j', 'cfg.py',
                       SIGNAL='')
    assert '--signal' not in quiet
    other = _fake_srun(tmp_path, 'slurm_train.sh', 'p', 'j', 'cfg.py',
                       SIGNAL='TERM@60')
    assert '--signal=TERM@60' in other
    test = _fake_srun(tmp_path, 'slurm_test.sh', 'p', 'j', 'cfg.py',
                      'ckpt.pth', '--dump', 'r.pkl')
    assert '--signal' not in test
    assert test.endswith('tools/test.py cfg.py ckpt.pth --launcher=slurm '
                         '--dump r.pkl')
