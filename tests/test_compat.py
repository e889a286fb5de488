"""Each fix of ``mmbodvcl.compat`` as a test on the real, pinned stack.

1. ``import mmaction.models`` works after ``import mmbodvcl``; building
   ``DRN`` raises a clear error.
2. Checkpoints saved by a real ``Runner`` (message hub, numpy scalars,
   optimizer state) load through resume, ``load_from`` and a
   ``Pretrained`` ``init_cfg`` while ``torch.load`` stays weights-only; a
   hostile checkpoint is refused before its payload runs.
3. ``tools/dist_train.sh CONFIG 2`` trains with gloo on a CPU-only machine,
   also a config whose norm layers are SyncBN.
"""
import os
import os.path as osp
import re
import subprocess
import sys
import time
from typing import Any, Dict, Iterator, List

import numpy as np
import pytest
import torch

import mmbodvcl  # noqa: F401  (applies the fixes under test)
from helpers import (free_port, launcher_env, make_video_dataset,
                     mmaction_config)
from mmengine.config import Config
from mmengine.logging import HistoryBuffer
from mmengine.registry import DefaultScope
from mmengine.runner import Runner, load_checkpoint

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CONFIG = osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_recognizer3d.py')
DIST_TRAIN = osp.join(REPO_ROOT, 'tools', 'dist_train.sh')
AVA_CONFIG = ('detection/slowonly/slowonly_kinetics400-pretrained-'
              'r50_8xb16-4x16x1-20e_ava21-rgb.py')


def tiny_config(data_root: str, work_dir: str, **overrides: Any) -> Config:
    """The tiny Recognizer3D config on the videos under ``data_root``."""
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.work_dir = work_dir
    cfg.train_dataloader.dataset.ann_file = osp.join(data_root, 'ann.txt')
    cfg.train_dataloader.dataset.data_prefix = dict(video=data_root)
    cfg.test_dataloader.dataset.ann_file = osp.join(data_root, 'ann.txt')
    cfg.test_dataloader.dataset.data_prefix = dict(video=data_root)
    cfg.merge_from_dict(overrides)
    return cfg


def walk(obj: Any) -> Iterator[Any]:
    """Every object nested in dicts, lists and tuples of ``obj``."""
    yield obj
    if isinstance(obj, dict):
        for value in obj.values():
            yield from walk(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from walk(value)


class HostilePayload:
    """Unpickling this runs ``os.system`` (touches ``marker``)."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f'touch {self.marker}', )


# --------------------------------------------------------------------- 1. DRN
def test_mmaction_models_import_and_drn_raises_clear_error() -> None:
    import mmaction.models  # noqa: F401  (fails without the stand-in)
    from mmaction.registry import MODELS
    with DefaultScope.overwrite_default_scope('mmaction'):
        with pytest.raises(ImportError, match='DRN is unavailable in the '
                           'installed mmaction2'):
            MODELS.build(dict(type='DRN', vocab_size=10))


def test_fresh_interpreter_imports_mmaction_models_after_mmbodvcl() -> None:
    # In this process other tests may have imported things already; a fresh
    # interpreter shows the import order a user's script has.
    code = ('import mmbodvcl, mmaction.models; '
            'from mmaction.registry import MODELS; '
            "print(MODELS.get('Recognizer3D').__name__)")
    result = subprocess.run([sys.executable, '-c', code],
                            capture_output=True,
                            text=True,
                            cwd=REPO_ROOT)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith('Recognizer3D')


# -------------------------------------------------------------- 2. checkpoints
@pytest.fixture(scope='module')
def trained(tmp_path_factory: pytest.TempPathFactory) -> Dict[str, str]:
    """One epoch of the tiny recognizer by a real Runner; its checkpoint."""
    root = tmp_path_factory.mktemp('compat_ckpt')
    data_root = str(root / 'videos')
    make_video_dataset(data_root, num_videos=4, size=(32, 32))
    work_dir = str(root / 'work')
    cfg = tiny_config(data_root, work_dir)
    # Validation with save_best puts numpy scalars (AccMetric's np.float64)
    # into the message hub, as in real training runs.
    cfg.val_dataloader = cfg.test_dataloader
    cfg.val_evaluator = cfg.test_evaluator
    cfg.val_cfg = dict(type='ValLoop')
    cfg.default_hooks.checkpoint.save_best = 'auto'
    runner = Runner.from_cfg(cfg)
    runner.train()
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(checkpoint)
    return dict(data_root=data_root, checkpoint=checkpoint, root=str(root))


def test_weights_only_loading_stays_on() -> None:
    assert 'TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD' not in os.environ
    assert os.environ.get('TORCH_FORCE_WEIGHTS_ONLY_LOAD', '1') != '0'
    # Exactly the needed globals are allowed, not the whole of pickle.
    allowed = {}
    for entry in torch.serialization.get_safe_globals():
        obj, name = entry if isinstance(entry, tuple) else (
            entry, f'{entry.__module__}.{entry.__qualname__}')
        allowed[name] = obj
    assert allowed['mmengine.logging.history_buffer.HistoryBuffer'] is (
        HistoryBuffer)
    assert allowed['builtins.getattr'] is not getattr
    assert not {'posix.system', 'builtins.eval', 'builtins.exec'} & set(
        allowed)


def test_runner_checkpoint_loads_weights_only(trained: Dict[str, str]) -> None:
    checkpoint = torch.load(trained['checkpoint'], map_location='cpu',
                            weights_only=True)
    # The checkpoint carries what made torch >= 2.6 refuse it before.
    loss_history = checkpoint['message_hub']['log_scalars']['train/loss']
    assert isinstance(loss_history, HistoryBuffer)
    assert isinstance(loss_history.data[0], np.ndarray)
    assert any(isinstance(obj, np.generic) for obj in walk(checkpoint))
    momentum = [
        state['momentum_buffer']
        for state in checkpoint['optimizer']['state'].values()
    ]
    assert momentum and all(torch.isfinite(m).all() for m in momentum)
    assert checkpoint['meta']['epoch'] == 1


def test_resume_restores_counters_history_and_optimizer(
        trained: Dict[str, str], tmp_path) -> None:
    # What Runner.train() does first; training on is tools/train.py
    # --resume's test in test_stack.py.
    checkpoint = torch.load(trained['checkpoint'], map_location='cpu')
    cfg = tiny_config(
        trained['data_root'],
        str(tmp_path / 'resume'),
        resume=True,
        load_from=trained['checkpoint'])
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    assert (runner.epoch, runner.iter) == (1, 2)
    loss_history = runner.message_hub.get_scalar('train/loss')
    np.testing.assert_allclose(
        loss_history.data[0], checkpoint['message_hub']['log_scalars']
        ['train/loss'].data[0])
    optimizer_state = runner.optim_wrapper.optimizer.state_dict()['state']
    for index, state in checkpoint['optimizer']['state'].items():
        torch.testing.assert_close(optimizer_state[index]['momentum_buffer'],
                                   state['momentum_buffer'])


def test_load_from_restores_weights(trained: Dict[str, str],
                                    tmp_path) -> None:
    state = torch.load(trained['checkpoint'], map_location='cpu')['state_dict']
    cfg = tiny_config(
        trained['data_root'],
        str(tmp_path / 'load_from'),
        load_from=trained['checkpoint'])
    runner = Runner.from_cfg(cfg)
    runner.load_or_resume()
    assert (runner.epoch, runner.iter) == (0, 0)  # weights only
    loaded = runner.model.state_dict()
    for name, value in state.items():
        torch.testing.assert_close(loaded[name], value)


def test_pretrained_init_cfg_loads_checkpoint(trained: Dict[str,
                                                            str]) -> None:
    # The stock AVA config initialises its FastRCNN from a recognizer
    # checkpoint through init_cfg=dict(type='Pretrained'); same here with
    # the tiny backbone of our checkpoint.
    from mmaction.registry import MODELS
    state = torch.load(trained['checkpoint'], map_location='cpu')['state_dict']
    cfg = mmaction_config(AVA_CONFIG)
    cfg.model.backbone.update(depth=18, base_channels=8)
    cfg.model.roi_head.bbox_head.in_channels = 64
    cfg.model.init_cfg = dict(
        type='Pretrained', checkpoint=trained['checkpoint'])
    with DefaultScope.overwrite_default_scope('mmaction'):
        detector = MODELS.build(cfg.model)
    detector.init_weights()
    detector_state = detector.state_dict()
    backbone_keys = [key for key in state if key.startswith('backbone.')]
    assert backbone_keys
    for key in backbone_keys:
        torch.testing.assert_close(detector_state[key], state[key])


def test_empty_history_buffer_loads_weights_only(tmp_path) -> None:
    """numpy pickles an empty buffer's data through ``bytes``."""
    path = str(tmp_path / 'empty_buffer.pth')
    torch.save(dict(buffer=HistoryBuffer()), path)
    loaded = torch.load(path)['buffer']
    assert isinstance(loaded, HistoryBuffer) and len(loaded.data[0]) == 0


@pytest.fixture
def hostile_checkpoint(tmp_path) -> Dict[str, str]:
    marker = str(tmp_path / 'payload_ran')
    path = str(tmp_path / 'hostile.pth')
    # A checkpoint that looks like MMEngine's but pickles a callable.
    torch.save(
        dict(meta=dict(epoch=1, iter=2), state_dict={},
             message_hub=HostilePayload(marker)), path)
    return dict(path=path, marker=marker)


def test_hostile_checkpoint_refused_by_torch_load(
        hostile_checkpoint: Dict[str, str]) -> None:
    with pytest.raises(Exception, match='(?i)weights.only'):
        torch.load(hostile_checkpoint['path'])
    assert not osp.exists(hostile_checkpoint['marker'])


def test_hostile_checkpoint_refused_by_mmengine(
        hostile_checkpoint: Dict[str, str]) -> None:
    model = torch.nn.Linear(2, 2)
    with pytest.raises(Exception, match='(?i)weights.only'):
        load_checkpoint(model, hostile_checkpoint['path'], map_location='cpu')
    assert not osp.exists(hostile_checkpoint['marker'])


def test_hostile_checkpoint_refused_by_resume(
        trained: Dict[str, str], hostile_checkpoint: Dict[str, str],
        tmp_path) -> None:
    cfg = tiny_config(
        trained['data_root'],
        str(tmp_path / 'hostile_resume'),
        resume=True,
        load_from=hostile_checkpoint['path'])
    runner = Runner.from_cfg(cfg)
    with pytest.raises(Exception, match='(?i)weights.only'):
        runner.load_or_resume()
    assert not osp.exists(hostile_checkpoint['marker'])


class GetattrPayload:
    """Unpickling this looks up ``HistoryBuffer.min.__globals__``: the first
    step of a ``getattr`` chain from an allowed type to ``os.system``."""

    def __reduce__(self):
        return getattr, (HistoryBuffer.min, '__globals__')


def test_getattr_serves_only_history_buffer_statistics(tmp_path) -> None:
    path = str(tmp_path / 'getattr_chain.pth')
    torch.save(dict(state_dict={}, payload=GetattrPayload()), path)
    with pytest.raises(Exception, match='refused getattr'):
        torch.load(path)


# ------------------------------------------------------ 3. CPU distributed run
def test_dist_train_two_processes_with_gloo(tmp_path) -> None:
    data_root = str(tmp_path / 'videos')
    make_video_dataset(data_root, num_videos=4, size=(32, 32))
    work_dir = str(tmp_path / 'dist')
    env = launcher_env(PORT=str(free_port()))
    env.pop('CUDA_VISIBLE_DEVICES', None)
    options: List[str] = [
        f'train_dataloader.dataset.ann_file={data_root}/ann.txt',
        f'train_dataloader.dataset.data_prefix.video={data_root}',
        'train_dataloader.batch_size=1',
        # A GPU config's SyncBN: converted to BatchNorm for the CPU ranks.
        'model.backbone.norm_cfg.type=SyncBN',
        # DEBUG makes MMEngine's logger write one file per rank.
        'log_level=DEBUG',
    ]
    start = time.perf_counter()
    result = subprocess.run(
        ['bash', DIST_TRAIN, TINY_CONFIG, '2', '--work-dir', work_dir,
         '--cfg-options', *options],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600)
    elapsed = time.perf_counter() - start
    print(f'2-process gloo dist_train.sh run: {elapsed:.1f} s')
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert osp.isfile(osp.join(work_dir, 'epoch_1.pth'))
    checkpoint = torch.load(osp.join(work_dir, 'epoch_1.pth'),
                            map_location='cpu')
    # 4 videos over 2 ranks with batch 1: 2 iterations per rank.
    assert checkpoint['meta']['iter'] == 2
    rank_logs = {}
    for dirpath, _, filenames in os.walk(work_dir):
        for name in filenames:
            match = re.search(r'_rank(\d+)\.log$', name)
            if match:
                with open(osp.join(dirpath, name), encoding='utf-8') as f:
                    rank_logs[int(match.group(1))] = f.read()
    assert sorted(rank_logs) == [0, 1], sorted(rank_logs)
    for rank, text in rank_logs.items():
        assert 'Epoch(train) [1][2/2]' in text, f'rank {rank} did not train'
    assert 'Distributed training: True' in rank_logs[0]
    assert 'GPU number: 2' in rank_logs[0]  # MMEngine's name: world size
    assert output.count('using the gloo backend') == 2, output[-5000:]
    assert 'SyncBatchNorm layers' in output and 'backbone.' in output


def test_sync_batchnorm_becomes_batchnorm_on_cpu_only() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(3, 4), torch.nn.SyncBatchNorm(4),
        torch.nn.Sequential(torch.nn.SyncBatchNorm(4)))
    model[1].weight.data.uniform_()
    weight = model[1].weight.detach().clone()
    mmbodvcl.compat.revert_sync_batchnorm_on_cpu(model)
    assert not any(
        isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    assert isinstance(model[1], torch.nn.modules.batchnorm._BatchNorm)
    assert torch.equal(model[1].weight, weight)
    model(torch.randn(5, 3)).sum().backward()  # trains without a group
