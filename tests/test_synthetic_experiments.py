"""Shortened runs of both synthetic experiments, the demo's outputs, and the
Runner path of configs/synthetic."""
import json
import math
import os.path as osp
from dataclasses import replace

import pytest
import torch
from mmengine.config import Config
from mmengine.runner import Runner

import mmbodvcl  # noqa: F401  (registration)
from mmbodvcl.datasets.synthetic import SEMANTICS, SyntheticVideoGenerator
from mmbodvcl.experiments.demo import DemoSettings, run_demo
from mmbodvcl.experiments.end_to_end import EndToEndSettings, run_end_to_end
from mmbodvcl.experiments.two_stream import (TwoStreamSettings,
                                             run_two_stream)
from mmbodvcl.experiments.views import ViewPool

FRAMES, SIZE = 4, 32
TINY_TWO_STREAM = TwoStreamSettings(steps=4, batch_size=16, width=4,
                                    embed_dim=8, probe_every=2)
TINY_END_TO_END = EndToEndSettings(steps=2, batch_size=8, base_channels=4,
                                   embed_dim=8, hidden_dim=16, log_every=1)
CONFIG_DIR = osp.join(osp.dirname(__file__), '..', 'configs', 'synthetic')


@pytest.fixture(scope='module')
def pools():
    train = ViewPool.render(
        SyntheticVideoGenerator(48, 'i', 1.0, FRAMES, SIZE, seed=1), 2)
    evaluation = ViewPool.render(
        SyntheticVideoGenerator(64, 'iii', 1.0, FRAMES, SIZE, seed=2), 1)
    return train, evaluation


def _check_accuracies(accuracies):
    assert set(accuracies) == set(SEMANTICS)
    assert all(0.0 <= value <= 1.0 for value in accuracies.values())


def test_two_stream_run_records_finite_dynamics(pools):
    train, evaluation = pools
    for loss in ('unified', 'decoupled'):
        run = run_two_stream(train, evaluation, loss, TINY_TWO_STREAM)
        assert run['probe_steps'] == [0, 2, 4]
        for key in ('grad_norm_static', 'grad_norm_dynamic', 'train_loss'):
            assert len(run[key]) == 4
            assert all(math.isfinite(v) and v >= 0 for v in run[key])
        # Both streams receive gradient from either loss.
        assert min(run['grad_norm_static']) > 0
        assert min(run['grad_norm_dynamic']) > 0
        _check_accuracies(run['final'])
        for key in ('accuracy', 'accuracy_static_stream',
                    'accuracy_dynamic_stream'):
            assert all(len(v) == 3 for v in run[key].values())
    with pytest.raises(ValueError, match="loss='joint'"):
        run_two_stream(train, evaluation, 'joint', TINY_TWO_STREAM)


def test_static_stream_alone_reads_background_colour(pools):
    """Untrained random convolutions of the first frame already separate
    blue from green linearly, and never see the brightness change."""
    train, evaluation = pools
    run = run_two_stream(train, evaluation, 'decoupled',
                         replace(TINY_TWO_STREAM, steps=1, width=8))
    static = {k: v[0] for k, v in run['accuracy_static_stream'].items()}
    assert static['simple_static'] > 0.9
    assert static['simple_dynamic'] < 0.75


@pytest.mark.parametrize('method', ['plain', 'bodvcl'])
def test_end_to_end_run_through_the_real_components(pools, method):
    train, evaluation = pools
    run = run_end_to_end(train, evaluation, method, TINY_END_TO_END,
                         xis=(0.3, ))
    assert len(run['train_loss']) == len(run['grad_norm']) == 2
    assert all(math.isfinite(v) for v in run['train_loss'] + run['grad_norm'])
    for key in ('final', 'final_backbone', 'final_static', 'final_dynamic'):
        _check_accuracies(run[key])
    assert run['seed'] == TINY_END_TO_END.seed and run['seconds'] > 0
    assert set(run['by_xi']) == {'0.1', '0.3'}
    # Wider threshold, at least as many static modes.
    assert run['by_xi']['0.3']['num_static'] >= run['by_xi']['0.1'][
        'num_static']
    assert len(run['eigvals']['real']) == 64 * (FRAMES - 1)
    assert all(math.isfinite(v) for v in run['eigvals']['real'])
    if method == 'bodvcl':  # the bi-level step ran: both levels logged
        assert {'loss_pred', 'loss_static', 'loss_dynamic',
                'hypergrad_norm'} <= set(run['log'])
    else:
        assert 'loss_unified' in run['log']


def test_demo_writes_well_formed_report(tmp_path):
    settings = DemoSettings(
        size=SIZE, num_frames=FRAMES, train_clips=32, views_per_clip=2,
        eval_clips=48, estimators=('literal', 'cross_view'), xis=(0.1, 0.3),
        seeds=2, two_stream=replace(TINY_TWO_STREAM, steps=2, probe_every=1),
        end_to_end=replace(TINY_END_TO_END, steps=1))
    messages = []
    run_demo(str(tmp_path), settings, log=messages.append)
    assert any('experiment 2, scenario ii, bodvcl, seed 1' in m
               for m in messages)
    results = json.loads((tmp_path / 'results.json').read_text())
    runs = [(scenario, loss) for scenario in ('i', 'ii')
            for loss in ('unified', 'decoupled')] + [('iii', 'unified')]
    assert sum(map(len, results['experiment1'].values())) == len(runs)
    for scenario, loss in runs:
        entry = results['experiment1'][scenario][loss]
        _check_accuracies(entry['final_accuracy'])
        assert len(entry['grad_norm_static']) == 2
        assert len(entry['grad_norm_dynamic']) == 2
    probed = ('final_accuracy', 'final_accuracy_backbone',
              'final_accuracy_static', 'final_accuracy_dynamic')
    assert set(results['experiment2']) == {'iii', 'i', 'ii'}
    for scenario in ('iii', 'i', 'ii'):
        assert set(results['experiment2'][scenario]) == {'plain', 'bodvcl'}
        for entry in results['experiment2'][scenario].values():
            assert entry['seeds'] == 2
            assert [run['seed'] for run in entry['per_seed']] == [0, 1]
            for key in probed:
                _check_accuracies(entry[key])
                for semantic in SEMANTICS:  # the key is the seeds' mean
                    mean = sum(run[key][semantic]
                               for run in entry['per_seed']) / 2
                    assert entry[key][semantic] == pytest.approx(mean)
            assert len(entry['grad_norm']) == 1
    assert set(results['estimators']) == {'literal', 'cross_view'}
    report = (tmp_path / 'report.md').read_text()
    assert '## Experiment 1' in report and '## Experiment 2' in report
    assert 'Best in this run: estimator' in report
    verdicts = [line for line in report.splitlines()
                if line.startswith('* Step ')]
    # the control, then Proposition 1 and BOD-VCL in scenarios i and ii
    assert [v[:8] for v in verdicts] == ['* Step 1'] + ['* Step 2',
                                                        '* Step 3'] * 2
    assert all('**holds**' in v or '**fails**' in v for v in verdicts)
    for name in ('fig6_correlated.png', 'fig7_independent.png',
                 'eigenvalues.png'):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000
        assert f'({name})' in report


@pytest.mark.parametrize('name', [
    'vsimclr_slowonly-r18-tiny_synthetic-i.py',
    'bodvcl-vsimclr_slowonly-r18-tiny_synthetic-i.py'
])
def test_synthetic_config_trains_with_the_runner(tmp_path, name):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, name))
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = 2
    cfg.train_dataloader.update(batch_size=4, num_workers=0,
                                persistent_workers=False)
    cfg.train_dataloader.dataset.update(num_samples=8, num_frames=FRAMES)
    cfg.custom_hooks[0].update(num_samples=32, num_frames=FRAMES,
                               interval=2)
    cfg.model.backbone.base_channels = 4
    cfg.model.neck.update(in_channels=32, hid_channels=16, out_channels=8)
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    for semantic in SEMANTICS:
        value = scalars[f'probe/Z/{semantic}'].current()
        assert 0.0 <= value <= 1.0
        assert f'probe/Z_A@0.1/{semantic}' in scalars
    assert torch.isfinite(torch.tensor(scalars['train/loss'].current()))
    probe = json.loads((tmp_path / 'synthetic_probe.json').read_text())
    assert probe['iter'] == 2
    assert {'backbone', 'Z', 'Z_A@0.1', 'Z_M@0.1'} <= set(
        probe['accuracies'])
    for embedding, accuracies in probe['accuracies'].items():
        assert accuracies == pytest.approx(
            {s: scalars[f'probe/{embedding}/{s}'].current()
             for s in SEMANTICS})
