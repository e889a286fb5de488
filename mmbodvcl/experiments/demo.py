"""``make demo``: the synthetic experiments, figures, results.json, report.md.

Experiment 1 (the paper's two-stream model, Proposition 1 / Corollary 1)
runs its own small loop on scenarios i, ii and iii with the unified and the
decoupled loss. Experiments 2 and 3 train the configs of
``configs/synthetic/`` with MMEngine's Runner (in this process, as
``tools/train.py`` would; :func:`~.sweep.train_in_process`), so that
``tools/sweep.py`` repeats every number:

* experiment 2, V-SimCLR vs V-SimCLR + BOD-VCL on scenarios iii (the
  control), i and ii, ``seeds`` seeds each;
* experiment 3, both decoupling families on one benchmark: plain, BOD-VCL,
  Static and Dynamic Concepts and V-SimCLR on derived inputs on scenarios
  iii and i (plain and BOD-VCL are experiment 2's runs);
* optionally BOD-VCL with other Koopman estimators.

``report.md`` is written by :mod:`.demo_report`.
"""
import os
import os.path as osp
import platform
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.config import Config

from mmbodvcl.datasets.synthetic import SEMANTICS, SyntheticVideoGenerator
from .demo_report import render_report
from .end_to_end import eigenvalue_summary
from .report import plot_spectrum, plot_two_stream, write_json
from .sweep import SweepRun, parse_cfg_options, train_in_process
from .two_stream import LOSSES, TwoStreamSettings, run_two_stream
from .views import ViewPool

#: Config file of each method in ``configs/synthetic/``.
CONFIGS = dict(
    plain='vsimclr_slowonly-r18-tiny_synthetic-i.py',
    bodvcl='bodvcl-vsimclr_slowonly-r18-tiny_synthetic-i.py',
    concepts='concepts_slowonly-r18-tiny_synthetic-i.py',
    derived_inputs='vsimclr-derived-inputs_slowonly-r18-tiny_synthetic-i.py')
EXPERIMENT2_METHODS = ('plain', 'bodvcl')
EXPERIMENT3_METHODS = ('plain', 'bodvcl', 'concepts', 'derived_inputs')
SCENARIO_KEY = 'train_dataloader.dataset.scenario'
ESTIMATOR_KEY = 'model.decoupler.estimator'
# results.json key of a Runner experiment -> embedding of probe_embeddings.
PROBED = dict(
    final_accuracy='unified',
    final_accuracy_backbone='backbone',
    final_accuracy_static='static',
    final_accuracy_dynamic='dynamic')
Records = Dict[str, Dict[str, List[dict]]]  # {scenario: {method: [seed]}}


def source_config_dir() -> str:
    """``configs/synthetic`` of the source checkout this package is in."""
    return osp.join(osp.dirname(osp.dirname(osp.dirname(
        osp.abspath(__file__)))), 'configs', 'synthetic')


@dataclass
class DemoSettings:
    """What the demo runs. Clip sizes, correlation and evaluation clips
    apply to every experiment (the Runner runs get them as
    ``--cfg-options`` where they differ from the configs');
    ``train_clips`` x ``views_per_clip`` are experiment 1's pre-rendered
    views (the Runner's dataset renders views on access)."""
    size: int = 32
    num_frames: int = 8
    correlation: float = 1.0
    train_clips: int = 1024
    views_per_clip: int = 4
    eval_clips: int = 512
    two_stream_scenarios: Sequence[str] = ('i', 'ii', 'iii')
    # Figure 7 needs only the unified loss; the decoupled one costs a run.
    independent_losses: Sequence[str] = ('unified', )
    end_to_end_scenarios: Sequence[str] = ('iii', 'i', 'ii')
    decoupling_scenarios: Sequence[str] = ('iii', 'i')
    # Seeds of every Runner run (model initialisation and batches).
    seeds: int = 1
    # Koopman estimators to compare on estimator_scenario (BOD-VCL runs).
    estimators: Sequence[str] = ()
    estimator_scenario: str = 'i'
    # Extra split thresholds to probe (none: the configs' own).
    xis: Sequence[float] = ()
    # Multiplies the configs' training iterations.
    scale: float = 1.0
    # Multiplies, on top of ``scale``, the iterations of the runs experiment
    # 3 adds (concepts, derived inputs): half, to keep the demo within 15
    # minutes on 2 cores; report.md gives every row's iterations.
    decoupling_scale: float = 0.5
    # Applied to every Runner run after the demo's own options.
    cfg_options: Sequence[str] = ()
    config_dir: str = field(default_factory=source_config_dir)
    two_stream: TwoStreamSettings = field(default_factory=TwoStreamSettings)
    seed: int = 0

    def config(self, method: str) -> str:
        path = osp.join(self.config_dir, CONFIGS[method])
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'config of method {method!r} not found: {path}; run the '
                'demo from a source checkout or set config_dir')
        return path


def _option_value(value) -> str:
    if isinstance(value, (list, tuple)):
        return '[' + ','.join(str(v) for v in value) + ']'
    return str(value)


def _config_value(cfg: Config, key: str):
    value = cfg
    for part in key.split('.'):
        value = value[int(part)] if part.isdigit() else value[part]
    return list(value) if isinstance(value, tuple) else value


def runner_options(settings: DemoSettings,
                   scale: Optional[float] = None) -> List[str]:
    """``--cfg-options`` of every Runner run: the demo's clip sizes,
    correlation, evaluation clips, iterations (the configs' times ``scale``,
    default ``settings.scale``) and thresholds where they differ from the
    configs', the probe only after the last iteration (the earlier ones
    change no number), then ``settings.cfg_options``."""
    cfg = Config.fromfile(settings.config('plain'))
    scale = settings.scale if scale is None else scale
    steps = max(1, round(cfg.train_cfg.max_iters * scale))
    wanted = [('train_cfg.max_iters', steps),
              ('train_dataloader.dataset.num_frames', settings.num_frames),
              ('train_dataloader.dataset.size', settings.size),
              ('train_dataloader.dataset.correlation', settings.correlation),
              ('custom_hooks.0.num_frames', settings.num_frames),
              ('custom_hooks.0.size', settings.size),
              ('custom_hooks.0.num_samples', settings.eval_clips),
              ('custom_hooks.0.interval', steps)]
    if settings.xis:
        wanted.append(('custom_hooks.0.xis', list(settings.xis)))
    options = []
    for key, value in wanted:
        option = f'{key}={_option_value(value)}'
        if parse_cfg_options([option])[key] != _config_value(cfg, key):
            options.append(option)
    return options + list(settings.cfg_options)


def run_demo(work_dir: str,
             settings: DemoSettings,
             log: Callable[[str], None] = print) -> dict:
    """Run everything and write ``results.json``, the PNGs and
    ``report.md`` into ``work_dir``; returns the results."""
    os.makedirs(work_dir, exist_ok=True)
    started = time.time()

    def stamp(message: str) -> None:
        log(f'[{time.time() - started:6.1f}s] {message}')

    pools, eval_pool = render_pools(settings, stamp)
    experiment1 = run_experiment1(pools, eval_pool, settings, stamp)
    options = runner_options(settings)
    decoupling_options = runner_options(
        settings, settings.scale * settings.decoupling_scale)
    root = osp.join(work_dir, 'runs')
    experiment2 = run_experiment2(settings, root, options, stamp)
    experiment3 = run_experiment3(settings, root, decoupling_options,
                                  experiment2, stamp)
    estimators = run_estimators(settings, root, options, experiment2,
                                stamp)
    results = dict(
        settings=asdict(settings),
        runner=dict(cfg_options=options,
                    decoupling_cfg_options=decoupling_options,
                    commands=reproduce_commands(settings, options,
                                                decoupling_options)),
        environment=dict(
            torch=torch.__version__,
            threads=torch.get_num_threads(),
            machine=platform.machine(),
            seconds=time.time() - started),
        experiment1={
            scenario: {loss: _two_stream_entry(run)
                       for loss, run in runs.items()}
            for scenario, runs in experiment1.items()
        },
        experiment2=_entries(experiment2),
        experiment3=_entries(experiment3),
        estimators={
            name: runner_entry(runs)
            for name, runs in estimators.items()
        })
    figures = plot_two_stream(experiment1, work_dir) + _plot_spectra(
        experiment2, work_dir)
    write_json(results, osp.join(work_dir, 'results.json'))
    with open(osp.join(work_dir, 'report.md'), 'w', encoding='utf-8') as f:
        f.write(render_report(results, figures))
    stamp(f'wrote {work_dir}/report.md, results.json and '
          f'{len(figures)} figures')
    return results


def _plot_spectra(experiment2: Records, work_dir: str) -> List[str]:
    """The eigenvalues of every run with a threshold split (first seed),
    one panel each; no figure without one."""
    spectra = {
        f'({scenario}) {method}': runs[0]['spectrum']
        for scenario, by_method in experiment2.items()
        for method, runs in by_method.items() if 'spectrum' in runs[0]
    }
    if not spectra:
        return []
    xi = next(iter(spectra.values()))['xi']
    return [plot_spectrum(
        {title: spectrum['eigvals'] for title, spectrum in spectra.items()},
        xi, osp.join(work_dir, 'eigenvalues.png'))]


def render_pools(settings: DemoSettings, stamp: Callable[[str], None]
                 ) -> Tuple[Dict[str, ViewPool], ViewPool]:
    """Experiment 1's training views of every scenario, and the evaluation
    clips (scenario iii, their own seed; the same clips as the Runner
    runs' ``SyntheticProbeHook`` for ``seed=0``)."""
    pools: Dict[str, ViewPool] = {}
    for index, scenario in enumerate(sorted(settings.two_stream_scenarios)):
        stamp(f'rendering {settings.train_clips} x {settings.views_per_clip} '
              f'training views, scenario {scenario}')
        pools[scenario] = ViewPool.render(
            _generator(settings, scenario, settings.train_clips,
                       settings.seed + 1 + index), settings.views_per_clip)
    stamp(f'rendering {settings.eval_clips} evaluation clips '
          '(independent semantics)')
    eval_pool = ViewPool.render(
        _generator(settings, 'iii', settings.eval_clips, settings.seed + 100),
        1)
    return pools, eval_pool


def _generator(settings: DemoSettings, scenario: str, num_samples: int,
               seed: int) -> SyntheticVideoGenerator:
    return SyntheticVideoGenerator(num_samples, scenario,
                                   settings.correlation, settings.num_frames,
                                   settings.size, seed)


def run_experiment1(pools: Dict[str, ViewPool], eval_pool: ViewPool,
                    settings: DemoSettings, stamp: Callable[[str], None]
                    ) -> Dict[str, Dict[str, dict]]:
    """The two-stream model with each loss: ``{scenario: {loss: run}}``."""
    experiment1: Dict[str, Dict[str, dict]] = {}
    for scenario in settings.two_stream_scenarios:
        for loss in (settings.independent_losses
                     if scenario == 'iii' else LOSSES):
            stamp(f'experiment 1, scenario {scenario}, {loss} loss')
            experiment1.setdefault(scenario, {})[loss] = run_two_stream(
                pools[scenario], eval_pool, loss, settings.two_stream,
                progress=lambda m: stamp('  ' + m))
    return experiment1


def train_seeds(settings: DemoSettings, root: str, options: List[str],
                method: str, setting: Tuple[Tuple[str, str], ...],
                stamp: Callable[[str], None]) -> List[dict]:
    """One Runner run of ``method``'s config with ``setting`` per seed;
    each record gets its wall time (``seconds``)."""
    records = []
    for offset in range(settings.seeds):
        run = SweepRun(settings.config(method), setting,
                       settings.seed + offset)
        stamp(f'{method}, {run.setting_name}, seed {run.seed}')
        started = time.time()
        record = train_in_process(run, root, options)
        record['seconds'] = time.time() - started
        records.append(record)
    return records


def run_experiment2(settings: DemoSettings, root: str, options: List[str],
                    stamp: Callable[[str], None]) -> Records:
    """Plain V-SimCLR and BOD-VCL on every scenario."""
    return {
        scenario: {
            method: train_seeds(settings, root, options, method,
                                ((SCENARIO_KEY, scenario), ), stamp)
            for method in EXPERIMENT2_METHODS
        }
        for scenario in settings.end_to_end_scenarios
    }


def run_experiment3(settings: DemoSettings, root: str, options: List[str],
                    experiment2: Records,
                    stamp: Callable[[str], None]) -> Records:
    """Every method of ``EXPERIMENT3_METHODS`` on the decoupling scenarios;
    runs experiment 2 already made are reused, not repeated; the others get
    ``options`` (their iterations)."""
    experiment3: Records = {}
    for scenario in settings.decoupling_scenarios:
        for method in EXPERIMENT3_METHODS:
            done = experiment2.get(scenario, {}).get(method)
            experiment3.setdefault(scenario, {})[method] = done or (
                train_seeds(settings, root, options, method,
                            ((SCENARIO_KEY, scenario), ), stamp))
    return experiment3


def run_estimators(settings: DemoSettings, root: str, options: List[str],
                   experiment2: Records,
                   stamp: Callable[[str], None]) -> Dict[str, List[dict]]:
    """BOD-VCL with each Koopman estimator on ``estimator_scenario``; the
    config's own estimator is experiment 2's run."""
    if not settings.estimators:
        return {}
    scenario = settings.estimator_scenario
    own = Config.fromfile(settings.config('bodvcl')).model.decoupler.get(
        'estimator')
    estimators: Dict[str, List[dict]] = {}
    for estimator in settings.estimators:
        done = experiment2.get(scenario, {}).get('bodvcl')
        if estimator == own and done:
            estimators[estimator] = done
            continue
        estimators[estimator] = train_seeds(
            settings, root, options, 'bodvcl',
            ((SCENARIO_KEY, scenario), (ESTIMATOR_KEY, estimator)), stamp)
    return estimators


def reproduce_commands(settings: DemoSettings, options: List[str],
                       decoupling_options: List[str]) -> Dict[str, str]:
    """The ``tools/sweep.py`` command that repeats each experiment's Runner
    runs (experiment 3's: the runs it adds)."""
    seeds = ' '.join(str(settings.seed + k) for k in range(settings.seeds))

    def command(methods, grid, options=options) -> str:
        configs = ' '.join(f'configs/synthetic/{CONFIGS[m]}' for m in methods)
        return (f'python tools/sweep.py {configs} {grid} --seeds {seeds}' +
                (' --cfg-options ' + ' '.join(options) if options else ''))

    scenarios = ' '.join(settings.end_to_end_scenarios)
    commands = dict(experiment2=command(
        EXPERIMENT2_METHODS, f'--grid {SCENARIO_KEY} {scenarios}'))
    new = [m for m in EXPERIMENT3_METHODS if m not in EXPERIMENT2_METHODS]
    decoupling = ' '.join(settings.decoupling_scenarios)
    commands['experiment3'] = command(
        new, f'--grid {SCENARIO_KEY} {decoupling}', decoupling_options)
    if settings.estimators:
        commands['estimators'] = command(
            ['bodvcl'], f'--grid {SCENARIO_KEY} {settings.estimator_scenario}'
            f" --grid {ESTIMATOR_KEY} {' '.join(settings.estimators)}")
    return commands


def _two_stream_entry(run: dict) -> dict:
    return dict(
        final_accuracy=run['final'],
        final_accuracy_static_stream={
            k: v[-1] for k, v in run['accuracy_static_stream'].items()
        },
        final_accuracy_dynamic_stream={
            k: v[-1] for k, v in run['accuracy_dynamic_stream'].items()
        },
        grad_norm_static=run['grad_norm_static'],
        grad_norm_dynamic=run['grad_norm_dynamic'],
        train_loss=run['train_loss'],
        probe_steps=run['probe_steps'],
        accuracy=run['accuracy'])


def _entries(records: Records) -> Dict[str, Dict[str, dict]]:
    return {
        scenario: {method: runner_entry(runs)
                   for method, runs in by_method.items()}
        for scenario, by_method in records.items()
    }


def _mean_accuracy(runs: List[dict], name: str):
    """Seed mean of one embedding's probes; None where the model does not
    have that embedding."""
    if name not in runs[0]['accuracies']:
        return None
    return {
        semantic: sum(run['accuracies'][name][semantic]
                      for run in runs) / len(runs)
        for semantic in SEMANTICS
    }


def runner_entry(runs: List[dict]) -> dict:
    """The probes averaged over the seeds (``PROBED`` keys, None for an
    embedding the model lacks), each seed's under ``per_seed``; training
    scalars, Koopman split thresholds and eigenvalue statistics of the
    first seed."""
    first = runs[0]
    entry: dict = {key: _mean_accuracy(runs, name)
                   for key, name in PROBED.items()}
    entry.update(
        seeds=len(runs),
        per_seed=[
            dict(seed=run['seed'], seconds=run['seconds'], iter=run['iter'],
                 work_dir=run['work_dir'],
                 **{key: run['accuracies'].get(name)
                    for key, name in PROBED.items()})
            for run in runs
        ],
        train_loss=first['log'].get('loss', []),
        log=first['log'])
    if 'spectrum' in first:
        entry.update(by_xi=first['spectrum']['by_xi'],
                     eigenvalues=eigenvalue_summary(first['spectrum']))
    return entry
