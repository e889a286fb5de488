"""Run a grid of synthetic pretraining runs through ``tools/train.py``.

Every config x every combination of ``--grid`` values x every seed is one
``tools/train.py CONFIG --seed K --cfg-options KEY=VALUE ...`` run (so the
same command runs on a GPU); each writes ``synthetic_probe.json`` (the
configs of ``configs/synthetic/`` probe with ``SyntheticProbeHook``). The
sweep writes ``results.json`` (every run) and ``results.md`` (mean +- std
over the seeds) into ``--work-dir``. Runs whose probe file exists are not
repeated, so an interrupted sweep resumes. Example, the control, Proposition
1 and BOD-VCL in three seeds::

    python tools/sweep.py \\
        configs/synthetic/vsimclr_slowonly-r18-tiny_synthetic-i.py \\
        configs/synthetic/bodvcl-vsimclr_slowonly-r18-tiny_synthetic-i.py \\
        --grid train_dataloader.dataset.scenario iii i ii \\
        --seeds 0 1 2 --work-dir work_dirs/sweep
"""
import argparse
import os
import os.path as osp
import subprocess
import sys
import time
from typing import List

from mmengine.fileio import dump

from mmbodvcl.experiments.probe_hook import SyntheticProbeHook
from mmbodvcl.experiments.sweep import (SweepRun, expand, markdown_table,
                                        parse_grid, read_record, summarise)

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PROBE_FILE = SyntheticProbeHook.result_file


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+', help='config files')
    parser.add_argument('--grid', nargs='+', action='append', default=[],
                        metavar=('KEY', 'VALUE'),
                        help='a config key and its values; repeat for more '
                        'axes')
    parser.add_argument('--seeds', nargs='+', type=int, default=[0])
    parser.add_argument('--cfg-options', nargs='+', default=[],
                        help='KEY=VALUE applied to every run')
    parser.add_argument('--work-dir', default='work_dirs/sweep')
    return parser.parse_args(argv)


def run_one(run: SweepRun, root: str, cfg_options: List[str]) -> dict:
    """Train one run (unless its probe file exists) and return its record."""
    work_dir = run.work_dir(root)
    probe_file = osp.join(work_dir, PROBE_FILE)
    if not osp.isfile(probe_file):
        os.makedirs(work_dir, exist_ok=True)
        options = run.cfg_options() + list(cfg_options)
        command = [sys.executable, osp.join(REPO, 'tools', 'train.py'),
                   run.config, '--work-dir', work_dir, '--seed',
                   str(run.seed)] + (['--cfg-options', *options]
                                     if options else [])
        with open(osp.join(work_dir, 'sweep.log'), 'w') as log:
            status = subprocess.call(command, stdout=log,
                                     stderr=subprocess.STDOUT)
        if status != 0 or not osp.isfile(probe_file):
            raise SystemExit(
                f'{run.config} ({run.setting_name}, seed {run.seed}) '
                f'failed with exit code {status}; its output is in '
                f'{osp.join(work_dir, "sweep.log")}' +
                ('' if status else f' (no {PROBE_FILE}: does the config '
                 'have SyntheticProbeHook?)'))
    return read_record(run, work_dir)


def main(argv=None) -> None:
    args = parse_args(argv)
    for config in args.configs:
        if not osp.isfile(config):
            raise SystemExit(f'config {config!r} does not exist')
    try:
        runs = expand(args.configs, parse_grid(args.grid), args.seeds)
    except ValueError as error:
        raise SystemExit(str(error))
    started, records = time.time(), []
    for index, run in enumerate(runs, 1):
        print(f'[{time.time() - started:7.1f}s] run {index}/{len(runs)}: '
              f'{osp.basename(run.config)} {run.setting_name} '
              f'seed {run.seed}', flush=True)
        records.append(run_one(run, args.work_dir, args.cfg_options))
    rows = summarise(records)
    dump(dict(runs=records, summary=rows),
         osp.join(args.work_dir, 'results.json'), indent=2)
    table = markdown_table(rows)
    with open(osp.join(args.work_dir, 'results.md'), 'w') as f:
        f.write(table)
    print(table + f'\nwrote {args.work_dir}/results.json and results.md '
          f'({time.time() - started:.0f} s)', flush=True)


if __name__ == '__main__':
    main(sys.argv[1:])
