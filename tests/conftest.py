"""Test-session setup: report which stack the suite ran on."""
import os.path as osp
import subprocess
import sys

import pytest
import torch

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def pytest_report_header(config):
    return subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'check_lock.py'),
         '--headline'],
        capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope='session', autouse=True)
def one_thread():
    """Tiny models on a shared 2-core machine run several times faster on
    one intra-op thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
