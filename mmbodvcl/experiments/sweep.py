"""Grids of synthetic runs through MMEngine's Runner and their table.

A sweep crosses configs, settings (``--cfg-options`` values) and seeds;
every run is one ``tools/train.py CONFIG --seed K --cfg-options ...`` call
(``tools/sweep.py``) or the same training in this process
(:func:`train_in_process`, ``make demo``), whose ``SyntheticProbeHook``
writes ``synthetic_probe.json`` into the run's work dir. This module expands
the grid, names the runs, trains in process, and turns the collected probes
into ``results.json`` and a markdown table of means and spreads over the
seeds.
"""
import argparse
import gc
import itertools
import os
import os.path as osp
import statistics
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from mmengine.config import Config
from mmengine.fileio import load

from mmbodvcl.apis.runner_cli import add_runner_args, build_runner
from mmbodvcl.datasets.synthetic import SEMANTICS
from .probe_hook import SyntheticProbeHook, logged_accuracies


@dataclass(frozen=True)
class SweepRun:
    config: str
    setting: Tuple[Tuple[str, str], ...]  # ((cfg key, value), ...)
    seed: int

    @property
    def setting_name(self) -> str:
        return ' '.join(self.cfg_options()) or 'config'

    def work_dir(self, root: str) -> str:
        """``root/<config name>/<key=value,...>/seed<k>``."""
        config = osp.splitext(osp.basename(self.config))[0]
        setting = ','.join(self.cfg_options()) or 'config'
        return osp.join(root, config, setting, f'seed{self.seed}')

    def cfg_options(self) -> List[str]:
        return [f'{key}={value}' for key, value in self.setting]


def read_record(run: SweepRun, work_dir: str) -> dict:
    """The record of a finished run from its probe file: config, setting,
    seed, work_dir, iter, ``accuracies`` (every embedding, the split's parts
    at each threshold included) and the probe file's ``spectrum`` (when the
    model has a split)."""
    probe = load(osp.join(work_dir, SyntheticProbeHook.result_file))
    record = dict(config=run.config, setting=run.setting_name, seed=run.seed,
                  work_dir=work_dir, iter=probe['iter'],
                  accuracies=logged_accuracies(probe))
    if 'spectrum' in probe:
        record['spectrum'] = probe['spectrum']
    return record


def parse_cfg_options(options: Sequence[str]) -> dict:
    """``KEY=VALUE`` strings parsed as ``tools/train.py --cfg-options``
    parses them (MMEngine's ``DictAction``)."""
    if not options:
        return {}
    parser = argparse.ArgumentParser()
    add_runner_args(parser)
    return parser.parse_args(['--cfg-options', *options]).cfg_options


def train_in_process(run: SweepRun, root: str,
                     cfg_options: Sequence[str] = ()) -> dict:
    """Train ``run`` in this process as ``tools/train.py run.config
    --work-dir run.work_dir(root) --seed run.seed --cfg-options
    run.cfg_options() cfg_options`` does (the same config merging), and
    return :func:`read_record` plus ``log``: the training scalars of every
    iteration (``{name: [...]}``, from the Runner's message hub)."""
    work_dir = run.work_dir(root)
    probe_file = osp.join(work_dir, SyntheticProbeHook.result_file)
    if osp.exists(probe_file):
        os.remove(probe_file)  # never read a previous run's probes
    cfg = Config.fromfile(run.config)
    cfg.work_dir = work_dir
    cfg.launcher = 'none'
    if cfg.get('randomness', None) is None:
        cfg.randomness = dict(seed=run.seed, diff_rank_seed=False,
                              deterministic=False)
    cfg.merge_from_dict(
        parse_cfg_options(run.cfg_options() + list(cfg_options)))
    # A name of its own: MMEngine's logger, message hub and visualizer are
    # per experiment name, and two runs can start within one second.
    cfg.experiment_name = '_'.join(
        [osp.splitext(osp.basename(run.config))[0], run.setting_name,
         f'seed{run.seed}', str(os.getpid()), str(id(cfg))]).replace(' ', '_')
    runner = build_runner(cfg)
    runner.train()
    log = {
        key[len('train/'):]: [float(v) for v in buffer.data[0]]
        for key, buffer in runner.message_hub.log_scalars.items()
        if key.startswith('train/') and 'time' not in key
    }
    del runner  # and with it the dataloader's worker processes
    gc.collect()
    return dict(read_record(run, work_dir), log=log)


def parse_grid(grid: Sequence[Sequence[str]]) -> List[Tuple[str, List[str]]]:
    """``[[key, value, ...], ...]`` (one ``--grid`` each) checked."""
    axes = []
    for axis in grid:
        if len(axis) < 2 or '=' in axis[0]:
            raise ValueError(
                f'--grid {" ".join(axis)!r}: expected a config key and at '
                'least one value, e.g. --grid train_dataloader.dataset.'
                'scenario iii i ii')
        axes.append((axis[0], list(axis[1:])))
    keys = [key for key, _ in axes]
    if len(set(keys)) != len(keys):
        raise ValueError(f'--grid names a key twice: {keys}')
    return axes


def expand(configs: Sequence[str], grid: Sequence[Tuple[str, List[str]]],
           seeds: Sequence[int]) -> List[SweepRun]:
    """Every config x every combination of grid values x every seed."""
    if not seeds:
        raise ValueError('a sweep needs at least one seed')
    combinations = itertools.product(*[[(key, value) for value in values]
                                       for key, values in grid])
    settings = [tuple(combination) for combination in combinations]
    return [
        SweepRun(config, setting, seed) for config in configs
        for setting in settings for seed in seeds
    ]


def summarise(records: List[dict]) -> List[dict]:
    """Group the runs by config and setting; per embedding and semantic the
    mean, the standard deviation over the seeds and the seeds' values."""
    groups: Dict[Tuple[str, str], List[dict]] = {}
    for record in records:
        groups.setdefault((record['config'], record['setting']),
                          []).append(record)
    rows = []
    for (config, setting), runs in groups.items():
        for embedding in runs[0]['accuracies']:
            for semantic in SEMANTICS:
                values = [run['accuracies'][embedding][semantic]
                          for run in runs]
                rows.append(dict(
                    config=config, setting=setting, embedding=embedding,
                    semantic=semantic, mean=statistics.fmean(values),
                    std=statistics.pstdev(values), values=values,
                    seeds=[run['seed'] for run in runs]))
    return rows


def markdown_table(rows: List[dict]) -> str:
    """One line per config, setting and embedding: mean +- std of the four
    semantics over the seeds."""
    lines = [
        '| config | setting | embedding | seeds | ' + ' | '.join(SEMANTICS) +
        ' |', '|---|---|---|---|' + '---|' * len(SEMANTICS)
    ]
    cells: Dict[Tuple[str, str, str], Dict[str, dict]] = {}
    for row in rows:
        cells.setdefault((row['config'], row['setting'], row['embedding']),
                         {})[row['semantic']] = row
    for (config, setting, embedding), per_semantic in cells.items():
        seeds = len(next(iter(per_semantic.values()))['values'])
        values = ' | '.join(
            f"{per_semantic[s]['mean']:.2f} +- {per_semantic[s]['std']:.2f}"
            for s in SEMANTICS)
        lines.append(f'| {osp.basename(config)} | {setting} | {embedding} | '
                     f'{seeds} | {values} |')
    return '\n'.join(lines) + '\n'
