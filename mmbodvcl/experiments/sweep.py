"""Grids of synthetic runs through ``tools/train.py`` and their table.

A sweep crosses configs, settings (``--cfg-options`` values) and seeds;
every run is one ``tools/train.py`` call whose ``SyntheticProbeHook`` writes
``synthetic_probe.json`` into the run's work dir. This module expands the
grid, names the runs and turns the collected probes into ``results.json``
and a markdown table of means and spreads over the seeds.
"""
import itertools
import os.path as osp
import statistics
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

from mmbodvcl.datasets.synthetic import SEMANTICS


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
