"""tools/sweep.py: the grid, its runs through tools/train.py, the table."""
import json
import os
import os.path as osp

import pytest

from mmbodvcl.datasets.synthetic import SEMANTICS
from mmbodvcl.experiments.sweep import (SweepRun, expand, markdown_table,
                                        parse_grid, summarise,
                                        train_in_process)
from helpers import load_script

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
sweep = load_script(osp.join(REPO, 'tools', 'sweep.py'))

CONFIG = osp.join(REPO, 'configs', 'synthetic',
                  'vsimclr_slowonly-r18-tiny_synthetic-i.py')
# Two iterations of a tiny model on tiny clips, probed once at the end.
TINY = [
    'train_cfg.max_iters=2', 'train_dataloader.batch_size=4',
    'train_dataloader.num_workers=0',
    'train_dataloader.persistent_workers=False',
    'train_dataloader.dataset.num_samples=8',
    'train_dataloader.dataset.num_frames=4', 'custom_hooks.0.num_frames=4',
    'custom_hooks.0.num_samples=32', 'custom_hooks.0.interval=2',
    'model.backbone.base_channels=4', 'model.neck.in_channels=32',
    'model.neck.hid_channels=16', 'model.neck.out_channels=8',
    'default_hooks.logger.interval=1'
]


def test_grid_crosses_configs_settings_and_seeds():
    grid = parse_grid([['train_dataloader.dataset.scenario', 'iii', 'i'],
                       ['model.decoupler.xi', '0.1', '0.3']])
    runs = expand(['a.py', 'b.py'], grid, [0, 1, 2])
    assert len(runs) == 2 * 4 * 3
    assert len({run.work_dir('/w') for run in runs}) == len(runs)
    assert runs[0] == SweepRun(
        'a.py', (('train_dataloader.dataset.scenario', 'iii'),
                 ('model.decoupler.xi', '0.1')), 0)
    assert runs[0].cfg_options() == [
        'train_dataloader.dataset.scenario=iii', 'model.decoupler.xi=0.1'
    ]
    assert expand(['a.py'], [], [3]) == [SweepRun('a.py', (), 3)]


@pytest.mark.parametrize('grid, message', [
    ([['train_dataloader.dataset.scenario']], 'at least one value'),
    ([['scenario=i', 'ii']], 'expected a config key'),
    ([['k', '1'], ['k', '2']], 'names a key twice'),
])
def test_bad_grid_is_refused_with_the_axis(grid, message):
    with pytest.raises(ValueError, match=message):
        parse_grid(grid)


def test_summary_is_the_mean_and_spread_over_seeds():
    def record(seed, value):
        return dict(config='c.py', setting='s=1', seed=seed,
                    accuracies=dict(Z={n: value for n in SEMANTICS}))

    rows = summarise([record(0, 0.5), record(1, 0.7), record(2, 0.9)])
    assert len(rows) == len(SEMANTICS)
    for row in rows:
        assert row['mean'] == pytest.approx(0.7)
        assert row['std'] == pytest.approx((0.08 / 3)**0.5)
        assert row['values'] == [0.5, 0.7, 0.9] and row['seeds'] == [0, 1, 2]
    table = markdown_table(rows).splitlines()
    assert table[2].startswith('| c.py | s=1 | Z | 3 | 0.70 +- 0.16 |')


def test_sweep_trains_each_run_through_train_py_and_resumes(tmp_path,
                                                            capsys):
    work_dir = str(tmp_path / 'sweep')
    argv = [
        CONFIG, '--grid', 'train_dataloader.dataset.scenario', 'iii', 'i',
        '--seeds', '0', '--work-dir', work_dir, '--cfg-options', *TINY
    ]
    sweep.main(argv)
    results = json.loads(open(osp.join(work_dir, 'results.json')).read())
    assert [run['setting'] for run in results['runs']] == [
        'train_dataloader.dataset.scenario=iii',
        'train_dataloader.dataset.scenario=i'
    ]
    for run in results['runs']:
        assert run['iter'] == 2
        # the plain model's embeddings (it has no static/dynamic parts)
        assert set(run['accuracies']) == {'backbone', 'unified'}
        # the run's own config: the grid value reached tools/train.py
        dumped = [f for f in os.listdir(run['work_dir']) if f.endswith('.py')]
        text = open(osp.join(run['work_dir'], dumped[0])).read()
        assert f"scenario='{run['setting'].split('=')[1]}'" in text
    table = open(osp.join(work_dir, 'results.md')).read()
    # one line per setting and embedding
    embeddings = len(results['runs'][0]['accuracies'])
    assert table.count('| vsimclr_slowonly-r18-tiny_synthetic-i.py |') == (
        2 * embeddings)
    logs = [osp.join(run['work_dir'], 'sweep.log') for run in results['runs']]
    stamps = [os.stat(log).st_mtime_ns for log in logs]
    sweep.main(argv)  # every probe file exists: nothing is trained again
    assert [os.stat(log).st_mtime_ns for log in logs] == stamps
    assert 'run 2/2' in capsys.readouterr().out


def test_a_failing_run_names_its_log(tmp_path):
    with pytest.raises(SystemExit, match='sweep.log'):
        sweep.main([CONFIG, '--work-dir', str(tmp_path), '--cfg-options',
                    *TINY, 'model.backbone.depth=7'])


def test_in_process_training_repeats_train_py(tmp_path):
    """What `make demo` trains in its own process, tools/train.py (through
    the sweep) repeats: the same config merging, seed and probes."""
    bodvcl = osp.join(REPO, 'configs', 'synthetic',
                      'bodvcl-vsimclr_slowonly-r18-tiny_synthetic-i.py')
    grid = ['--grid', 'train_dataloader.dataset.scenario', 'ii']
    sweep.main([bodvcl, *grid, '--seeds', '3', '--work-dir',
                str(tmp_path / 'sweep'), '--cfg-options', *TINY])
    expected = json.loads(
        open(osp.join(tmp_path, 'sweep', 'results.json')).read())['runs'][0]
    run = SweepRun(bodvcl, (('train_dataloader.dataset.scenario', 'ii'), ),
                   3)
    record = train_in_process(run, str(tmp_path / 'demo'), TINY)
    assert record['iter'] == expected['iter'] == 2
    assert record['accuracies'] == expected['accuracies']
    # the split's probes and static-mode counts at every threshold; the
    # eigenvalues themselves are not compared: measured, they differed
    # between the two processes by up to 0.24 while every probe agreed (an
    # operator fitted to a few frames and cut by rank is ill-conditioned)
    spectrum = record['spectrum']
    assert spectrum['by_xi'] == expected['spectrum']['by_xi']
    assert len(spectrum['eigvals']['real']) == len(
        expected['spectrum']['eigvals']['real'])
    assert len(record['log']['loss']) == 2
