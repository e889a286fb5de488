"""Every ``python benchmarks/...`` / ``python tools/...`` command that
README.md and docs/*.md show runs, so a documented command cannot crash
unnoticed.

The commands are read from the documents themselves (fenced blocks, with
their ``\\`` continuations, and inline code spans), so a new documented
command is covered as soon as it is written, and one naming a script that
does not exist fails. Each script is in exactly one of two tables:

* ``RUN_TINY``: every literal occurrence (no shell variables, globs or
  placeholders; optional ``[...]`` arguments left out) runs as documented,
  in an empty folder, with the table's arguments appended (argparse keeps
  the last value, so ``--tiny`` overrides the documented sizes); in this
  process where it can (one start of torch and MMAction2 for all);
* ``HELP_ONLY``: scripts that need a dataset, a trained checkpoint or a
  GPU at any size, with the reason and the test that runs them on tiny
  generated data; here their ``--help`` runs.

Every ``configs/...py`` path a documented command names must exist.
"""
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
import tempfile
from typing import Callable, Dict, List, NamedTuple

import pytest
import torch

from helpers import load_script

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = ['README.md'] + sorted(
    osp.join('docs', name) for name in os.listdir(osp.join(REPO, 'docs'))
    if name.endswith('.md'))
SCRIPT = re.compile(
    r'python3?(?:\s+-\w+)*\s+((?:benchmarks|tools)/[\w/.-]+\.py)')
INLINE_CODE = re.compile(r'`([^`]+)`')
# A command with one of these is a template (shell variables, loops,
# command substitution, globs, placeholders): its script is covered by a
# literal command or by HELP_ONLY, and its config paths are still checked.
TEMPLATE = re.compile(r'[$<>*{}\[]|\.\.\.|\bCONFIG\b|\bCHECKPOINT\b')

RUN_TINY: Dict[str, List[str]] = {
    'benchmarks/bench_bilevel.py': ['--tiny'],
    'benchmarks/bench_bilevel_memory.py': ['--tiny'],
    'benchmarks/bench_data_path.py': ['--tiny'],
    'benchmarks/bench_hypergrad_accuracy.py': ['--tiny'],
    'benchmarks/bench_knn_monitor.py': ['--tiny'],
    'benchmarks/bench_koopman_split.py': ['--tiny'],
    'benchmarks/bench_split_recovery.py': ['--tiny'],
    # --device cpu is already its small dry run (4 videos at 32 px).
    'benchmarks/gpu_check.py': [],
    'tools/check_lock.py': [],
    # Runs on a tiny checkpoint written where the command expects one.
    'tools/extract_backbone.py': [],
}
HELP_ONLY: Dict[str, str] = {
    'tools/train.py':
    'trains on Kinetics-400 / UCF-101, or the synthetic configs for 300 '
    'iterations and their probes; tiny configs train through it in '
    'test_launch.py and test_sweep.py, the synthetic configs through the '
    'Runner in test_synthetic_experiments.py',
    'tools/test.py':
    'needs a trained checkpoint and the dataset; runs on generated videos '
    'in test_downstream.py',
    'tools/run_demo.py':
    'the full demo takes minutes to hours; run_demo() runs at a tiny size '
    'in test_synthetic_experiments.py',
    'tools/sweep.py':
    'trains every grid point; test_sweep.py sweeps tiny runs through it',
    'tools/data/build_static_dynamic_ucf.py':
    'needs UCF-101; test_downstream.py builds both sets from generated '
    'videos',
    'tools/analysis/koopman_spectrum.py':
    'needs a Slow-R50 pretraining checkpoint and Kinetics-400 (cuda:0 in '
    'the docs); test_analysis_tools.py runs it on a tiny model',
    'tools/analysis/gradcam.py':
    'needs a Slow-R50 pretraining checkpoint and a Diving48 video; '
    'test_analysis_tools.py runs it on a tiny model',
    'tools/analysis/temporal_distinctiveness.py':
    'needs a Slow-R50 pretraining checkpoint and UCF-101 (cuda:0 in the '
    'docs); test_analysis_tools.py runs it on a tiny model',
}


class Command(NamedTuple):
    where: str  # doc:line
    script: str
    arguments: str

    @property
    def runnable(self) -> str:
        """The arguments without the optional ``[...]`` ones."""
        arguments, previous = self.arguments, None
        while arguments != previous:
            previous, arguments = arguments, re.sub(r'\[[^\[\]]*\]', '',
                                                    arguments)
        return ' '.join(arguments.split())

    @property
    def literal(self) -> bool:
        return not TEMPLATE.search(self.runnable)


def _mask_fenced_blocks(lines: List[str]) -> List[str]:
    """The lines with fenced code blocks blanked (line numbers kept)."""
    masked, fenced = [], False
    for line in lines:
        if line.lstrip().startswith('```'):
            fenced = not fenced
            masked.append('')
        else:
            masked.append('' if fenced else line)
    return masked


def _fenced_commands(doc: str, lines: List[str]) -> List[Command]:
    commands, fenced, pending, start = [], False, '', 0
    for number, line in enumerate(lines, 1):
        if line.lstrip().startswith('```'):
            fenced = not fenced
            continue
        if not fenced:
            continue
        pending, start = pending + line.rstrip(), start or number
        if pending.endswith('\\'):
            pending = pending[:-1] + ' '
            continue
        commands += _commands_in(f'{doc}:{start}', pending.split(' #')[0])
        pending, start = '', 0
    return commands


def _commands_in(where: str, text: str) -> List[Command]:
    """Every script call in ``text``, with the words after it (up to the
    next script call, ``;`` or a comment)."""
    matches = list(SCRIPT.finditer(text))
    commands = []
    for match, following in zip(matches, matches[1:] + [None]):
        end = following.start() if following else len(text)
        arguments = re.split(r';|\s#|&&|,\s', text[match.end():end])[0]
        commands.append(Command(where, match.group(1), arguments.strip()))
    return commands


def documented_commands() -> List[Command]:
    commands = []
    for doc in DOCS:
        with open(osp.join(REPO, doc), encoding='utf-8') as f:
            lines = f.read().split('\n')
        commands += _fenced_commands(doc, lines)
        prose = '\n'.join(_mask_fenced_blocks(lines))
        for span in INLINE_CODE.finditer(prose):
            line = prose.count('\n', 0, span.start()) + 1
            commands += _commands_in(f'{doc}:{line}',
                                     ' '.join(span.group(1).split()))
    return commands


COMMANDS = documented_commands()
LITERAL_RUNS = sorted(
    {(c.script, c.runnable): c
     for c in COMMANDS if c.script in RUN_TINY and c.literal}.values())


def test_the_extraction_finds_the_known_commands():
    """A check of the reader itself: commands in fenced blocks (with
    continuations), in inline code, and wrapped inside a span."""
    found = {(c.script, c.arguments) for c in COMMANDS}
    assert ('benchmarks/bench_koopman_split.py', '') in found
    assert ('benchmarks/bench_bilevel.py',
            '--slow-r50 --size 112 --device cpu --batch-size 2 --iters 3 '
            '--warmup 1 --methods baseline itd_fd aid_fd') in found
    assert any(c.script == 'tools/extract_backbone.py' and
               c.arguments.endswith('--format backbone') for c in COMMANDS)


def test_every_documented_script_exists_and_is_covered():
    scripts = {c.script for c in COMMANDS}
    for script in sorted(scripts):
        assert osp.isfile(osp.join(REPO, script)), (
            f'{script} is documented but does not exist: ' + ', '.join(
                c.where for c in COMMANDS if c.script == script))
        assert (script in RUN_TINY) != (script in HELP_ONLY), (
            f'{script}: add it to exactly one of RUN_TINY / HELP_ONLY')
    # No stale entry: a table names only documented scripts.
    assert set(RUN_TINY) | set(HELP_ONLY) == scripts
    for script in RUN_TINY:
        assert any(c.literal for c in COMMANDS if c.script == script), (
            f'{script} is documented only as a template; nothing runs it')


def test_every_documented_config_exists():
    for command in COMMANDS:
        for word in command.arguments.split():
            if word.startswith('configs/') and word.endswith('.py') and \
                    not TEMPLATE.search(word):
                assert osp.isfile(osp.join(REPO, word)), (command.where, word)


def _run_subprocess(script: str, arguments: List[str], cwd) -> None:
    env = dict(os.environ, TMPDIR=str(cwd), OUT=str(cwd))
    env['PYTHONPATH'] = os.pathsep.join(
        [REPO] + [p for p in [env.get('PYTHONPATH')] if p])
    result = subprocess.run([sys.executable,
                             osp.join(REPO, script)] + arguments,
                            cwd=str(cwd), env=env, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]


def _run_in_process(script: str, arguments: List[str], cwd,
                    monkeypatch) -> None:
    """``python script arguments`` in this process (no second start of
    torch and MMAction2), in ``cwd``; the scripts' global settings (thread
    count, temporary folder) are restored afterwards."""
    # ``python script`` puts the script's folder first on sys.path (the
    # benchmarks import their neighbour ``checkout`` that way)
    monkeypatch.syspath_prepend(osp.dirname(osp.join(REPO, script)))
    module = load_script(osp.join(REPO, script))
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(sys, 'argv', [script] + arguments)
    monkeypatch.setattr(tempfile, 'tempdir', str(cwd))
    threads = torch.get_num_threads()
    try:
        status = module.main()
        # an int is an exit status (``sys.exit(main())``)
        assert not isinstance(status, int) or status == 0, status
    except SystemExit as exit:
        assert exit.code in (0, None), f'{script} exited with {exit.code}'
    finally:
        torch.set_num_threads(threads)


def _pretraining_checkpoint(cwd, arguments: List[str]) -> None:
    """A tiny pretraining checkpoint at the command's first argument."""
    path = osp.join(str(cwd), arguments[0])
    os.makedirs(osp.dirname(path), exist_ok=True)
    torch.save(dict(state_dict={
        'backbone.conv1.weight': torch.randn(4, 3, 1, 3, 3),
        'neck.projector.fc0.weight': torch.randn(8, 4),
    }, meta=dict()), path)


PREPARE: Dict[str, Callable] = {
    'tools/extract_backbone.py': _pretraining_checkpoint,
}
# Run in a fresh interpreter: gpu_check initialises a process group;
# check_lock lists the installed distributions, which the test process's
# imports extend (setuptools' vendored packages on sys.path).
SUBPROCESS = {'benchmarks/gpu_check.py', 'tools/check_lock.py'}


@pytest.mark.parametrize('command', LITERAL_RUNS, ids=lambda c: c.where)
def test_documented_command_runs_at_tiny_size(command, tmp_path,
                                              monkeypatch):
    arguments = shlex.split(command.runnable)
    PREPARE.get(command.script, lambda *_: None)(tmp_path, arguments)
    arguments += RUN_TINY[command.script]
    if command.script in SUBPROCESS:
        _run_subprocess(command.script, arguments, tmp_path)
    else:
        _run_in_process(command.script, arguments, tmp_path, monkeypatch)


@pytest.mark.parametrize('script', sorted(HELP_ONLY))
def test_dataset_scale_script_help_runs(script, tmp_path, monkeypatch,
                                        capsys):
    _run_in_process(script, ['--help'], tmp_path, monkeypatch)
    assert 'usage:' in capsys.readouterr().out
