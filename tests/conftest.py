"""Test-session setup: report which stack the suite ran on, one intra-op
thread per process, and the tests that cannot share the machine grouped
onto one pytest-xdist worker (``make test`` runs ``--dist loadgroup``)."""
import ast
import inspect
import os.path as osp
import subprocess
import sys
from typing import Dict, Set

# OpenCV before anything imports decord: decord's bundled libraries loaded
# first break OpenCV's PNG codec in the same process ('libpng error: bad
# parameters to zlib'; docs/installation.md, Troubleshooting).
import cv2  # noqa: F401
import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))

#: What starts processes that talk to each other over ports or signals
#: (process groups, launchers, training scripts stopped by a signal): such
#: tests run one after another on one worker, so two launches never contend
#: for the cores within one timeout or race for a port.
LAUNCHES = ('free_port(', 'launcher_env(', 'mp.spawn(', 'start_processes(',
            'subprocess.Popen(')
#: The xdist group of those tests.
EXCLUSIVE_GROUP = 'processes'


def pytest_report_header(config):
    return subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'check_lock.py'),
         '--headline'],
        capture_output=True, text=True).stdout.strip()


def pytest_configure(config):
    config.addinivalue_line(
        'markers', 'xdist_group(name): run on the one xdist worker of the '
        'group (with --dist loadgroup)')


def _launching_functions(module) -> Set[str]:
    """Names of the module's functions whose code starts processes,
    directly or through another function of the module (helpers such as
    ``_launch``)."""
    try:
        text = inspect.getsource(module)
    except (OSError, TypeError):
        return set()
    sources: Dict[str, str] = {
        node.name: ast.get_source_segment(text, node)
        for node in ast.parse(text).body
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
    }
    launching = {name for name, source in sources.items()
                 if any(call in source for call in LAUNCHES)}
    grown = True
    while grown:
        callers = {name for name, source in sources.items()
                   if name not in launching and any(
                       f'{callee}(' in source for callee in launching)}
        launching |= callers
        grown = bool(callers)
    return launching


def pytest_collection_modifyitems(config, items):
    by_module: Dict[str, Set[str]] = {}
    for item in items:
        module = getattr(item, 'module', None)
        function = getattr(item, 'function', None)
        if module is None or function is None:
            continue
        if module.__name__ not in by_module:
            by_module[module.__name__] = _launching_functions(module)
        if function.__name__ in by_module[module.__name__]:
            item.add_marker(pytest.mark.xdist_group(EXCLUSIVE_GROUP))


@pytest.fixture
def mmaction_scope():
    """MMAction2 as the default registry scope (modules that build through
    the registries by type name use it: ``pytestmark =
    pytest.mark.usefixtures('mmaction_scope')``)."""
    from mmengine.registry import init_default_scope
    init_default_scope('mmaction')


@pytest.fixture(scope='session', autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run several times faster on
    one intra-op thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
