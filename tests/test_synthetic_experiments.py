"""Shortened runs of the synthetic experiments, the demo's outputs, and the
Runner path of configs/synthetic that experiments 2 and 3 train on."""
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
from mmbodvcl.experiments.demo import (CONFIGS, EXPERIMENT3_METHODS,
                                       DemoSettings, run_demo, runner_entry,
                                       runner_options)
from mmbodvcl.experiments.two_stream import (TwoStreamEncoder,
                                             TwoStreamSettings,
                                             run_two_stream)
from mmbodvcl.experiments.views import ViewPool

FRAMES, SIZE = 4, 32
TINY_TWO_STREAM = TwoStreamSettings(steps=4, batch_size=16, width=4,
                                    embed_dim=8, probe_every=2)
# A Runner run of a few clips and one or two iterations.
TINY_RUNNER = [
    # 8 clips x 2 views x 3 frame pairs >= the 32 dimensions the batch
    # Koopman operator of the BOD-VCL config needs
    'train_dataloader.batch_size=8', 'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'train_dataloader.dataset.num_samples=16',
    'default_hooks.logger.interval=1'
]
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


def test_each_stream_sees_only_its_kind_of_input():
    """The static stream reads only the first frame (later frames change
    nothing of it) and the dynamic stream only grey-level changes (a
    time-constant image added to every frame changes nothing of it): what
    makes them a static-only and a dynamic-only stream."""
    torch.manual_seed(0)
    model = TwoStreamEncoder(FRAMES, width=4, embed_dim=8).eval()
    clips = torch.randn(3, 3, FRAMES, SIZE, SIZE)
    later_changed = clips.clone()
    later_changed[:, :, 1:] = torch.randn(3, 3, FRAMES - 1, SIZE, SIZE)
    background = clips + torch.randn(3, 3, 1, SIZE, SIZE)
    with torch.no_grad():
        out = model(clips)
        assert torch.equal(model(later_changed)['static'], out['static'])
        assert not torch.allclose(model(later_changed)['dynamic'],
                                  out['dynamic'])
        torch.testing.assert_close(model(background)['dynamic'],
                                   out['dynamic'], atol=1e-4, rtol=1e-4)
        assert not torch.allclose(model(background)['static'],
                                  out['static'])


def _demo_settings(**kwargs) -> DemoSettings:
    """The demo on tiny clips: two Runner iterations per run, one for the
    runs experiment 3 adds (half as many by default)."""
    return DemoSettings(
        size=SIZE, num_frames=FRAMES, train_clips=32, views_per_clip=2,
        eval_clips=32, scale=2 / 300, cfg_options=tuple(TINY_RUNNER),
        two_stream=replace(TINY_TWO_STREAM, steps=2, probe_every=1),
        **kwargs)


def test_demo_runs_both_families_through_the_runner(tmp_path):
    own = Config.fromfile(_demo_settings().config(
        'bodvcl')).model.decoupler.estimator
    settings = _demo_settings(end_to_end_scenarios=('iii', 'i'),
                              estimators=(own, 'literal'))
    messages = []
    results = run_demo(str(tmp_path), settings, log=messages.append)
    trained = [m for m in messages if ', train_dataloader.dataset.' in m]
    # experiment 2: 2 scenarios x 2 methods; experiment 3 adds the two
    # other methods on both; the estimators add `literal` only
    assert len(trained) == 4 + 4 + 1
    assert json.loads((tmp_path / 'results.json').read_text()) == (
        json.loads(json.dumps(results)))
    runs = [(scenario, loss) for scenario in ('i', 'ii')
            for loss in ('unified', 'decoupled')] + [('iii', 'unified')]
    assert sum(map(len, results['experiment1'].values())) == len(runs)
    for scenario, loss in runs:
        entry = results['experiment1'][scenario][loss]
        _check_accuracies(entry['final_accuracy'])
        assert len(entry['grad_norm_static']) == 2
    exp2, exp3 = results['experiment2'], results['experiment3']
    assert set(exp3) == {'iii', 'i'}
    for scenario in ('iii', 'i'):
        assert set(exp2[scenario]) == {'plain', 'bodvcl'}
        assert set(exp3[scenario]) == set(EXPERIMENT3_METHODS)
        for method, entry in exp3[scenario].items():
            reused = method in ('plain', 'bodvcl')
            assert entry['seeds'] == 1
            assert entry['per_seed'][0]['iter'] == (2 if reused else 1)
            for key in ('final_accuracy', 'final_accuracy_backbone'):
                _check_accuracies(entry[key])
            has_parts = method != 'plain'
            for key in ('final_accuracy_static', 'final_accuracy_dynamic'):
                assert (entry[key] is not None) is has_parts
                if has_parts:
                    _check_accuracies(entry[key])
            assert ('eigenvalues' in entry) is (method == 'bodvcl')
        # the synthetic BOD-VCL config selects static modes by rank
        # (static_size): never empty, and nearer 1 than every other mode
        spectrum = exp2[scenario]['bodvcl']['eigenvalues']
        assert 0 < spectrum['static_fraction'] < 1
        assert (spectrum['static_max_distance'] <=
                spectrum['dynamic_min_distance'])
        for method in ('plain', 'bodvcl'):  # reused, not trained again
            assert exp3[scenario][method] == exp2[scenario][method]
    assert set(results['estimators']) == {own, 'literal'}
    assert results['estimators'][own] == exp2['i']['bodvcl']
    report = (tmp_path / 'report.md').read_text()
    for title in ('## Experiment 1', '## Experiment 2', '## Experiment 3',
                  'Best in this run: estimator'):
        assert title in report
    for command in results['runner']['commands'].values():
        assert command in report and command.startswith(
            'python tools/sweep.py configs/synthetic/')
    assert 'Not every method trained as long' in report
    assert 'Learned by' in report or 'No method learns it' in report
    for name in ('fig6_correlated.png', 'fig7_independent.png',
                 'eigenvalues.png'):
        data = (tmp_path / name).read_bytes()
        assert data[:8] == b'\x89PNG\r\n\x1a\n' and len(data) > 10_000
        assert f'({name})' in report


def test_demo_defaults_are_the_configs():
    """With its defaults the demo passes no option to the configs, so that
    `tools/train.py CONFIG` alone repeats its runs; a changed size or
    scale reaches both the dataset and the probe hook."""
    assert runner_options(DemoSettings()) == ['custom_hooks.0.interval=300']
    options = runner_options(DemoSettings(num_frames=4, scale=0.5))
    assert options == [
        'train_cfg.max_iters=150', 'train_dataloader.dataset.num_frames=4',
        'custom_hooks.0.num_frames=4', 'custom_hooks.0.interval=150']


def test_runner_entry_is_the_mean_over_seeds():
    def record(seed, value, parts):
        accuracies = dict(backbone=dict.fromkeys(SEMANTICS, value),
                          unified=dict.fromkeys(SEMANTICS, value / 2))
        if parts:
            accuracies.update(static=accuracies['unified'],
                              dynamic=accuracies['unified'])
        return dict(seed=seed, seconds=1.0, iter=3, work_dir=f'w{seed}',
                    accuracies=accuracies, log=dict(loss=[1.0, 0.5]))

    for parts in (False, True):
        entry = runner_entry([record(0, 0.6, parts), record(1, 1.0, parts)])
        assert entry['seeds'] == 2 and entry['train_loss'] == [1.0, 0.5]
        assert [run['seed'] for run in entry['per_seed']] == [0, 1]
        for semantic in SEMANTICS:
            assert entry['final_accuracy_backbone'][semantic] == (
                pytest.approx(0.8))
            assert entry['final_accuracy'][semantic] == pytest.approx(0.4)
        for key in ('final_accuracy_static', 'final_accuracy_dynamic'):
            assert (entry[key] is None) is not parts


@pytest.mark.parametrize('method', list(CONFIGS))
def test_synthetic_config_trains_with_the_runner(tmp_path, method):
    cfg = Config.fromfile(osp.join(CONFIG_DIR, CONFIGS[method]))
    cfg.work_dir = str(tmp_path)
    cfg.train_cfg.max_iters = 1
    cfg.train_dataloader.update(batch_size=8, num_workers=0,
                                persistent_workers=False)
    cfg.train_dataloader.dataset.update(num_samples=16, num_frames=FRAMES)
    cfg.custom_hooks[0].update(num_samples=32, num_frames=FRAMES,
                               interval=1, xis=(0.3, ))
    runner = Runner.from_cfg(cfg)
    runner.train()
    scalars = runner.message_hub.log_scalars
    assert torch.isfinite(torch.tensor(scalars['train/loss'].current()))
    probe = json.loads((tmp_path / 'synthetic_probe.json').read_text())
    assert probe['iter'] == 1
    parts = {'static', 'dynamic'} if method != 'plain' else set()
    assert set(probe['accuracies']) == {'backbone', 'unified', *parts}
    for embedding, accuracies in probe['accuracies'].items():
        _check_accuracies(accuracies)
        assert accuracies == pytest.approx(
            {s: scalars[f'probe/{embedding}/{s}'].current()
             for s in SEMANTICS})
    if method != 'bodvcl':
        assert 'spectrum' not in probe
        return
    # the bi-level step ran, and the Koopman split was probed at its own
    # threshold and the extra one
    assert {'train/loss_pred', 'train/hypergrad_norm'} <= set(scalars)
    spectrum = probe['spectrum']
    own = str(cfg.model.decoupler.xi)
    assert set(spectrum['by_xi']) == {own, '0.3'}
    assert spectrum['by_xi'][own]['static'] == probe['accuracies']['static']
    assert 'probe/static@0.3/simple_static' in scalars
    for split in spectrum['by_xi'].values():
        assert 0.0 <= split['separation'] <= 1.0
    # a wider threshold takes at least as many static modes
    if float(own) < 0.3:
        assert spectrum['by_xi']['0.3']['num_static'] >= spectrum['by_xi'][
            own]['num_static']
    # one eigenvalue list per probe clip: the clip's T - 1 modes, or the
    # batch operator's M (its eigenvalues, shared by every clip)
    modes = (cfg.model.neck.out_channels
             if cfg.model.decoupler.get('operator') == 'batch' else
             FRAMES - 1)
    assert len(spectrum['eigvals']['real']) == 32 * modes
    assert len(spectrum['static_mask']) == 32 * modes
    assert all(math.isfinite(v) for v in spectrum['eigvals']['real'])
