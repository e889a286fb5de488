"""Test-session setup: report which stack the suite ran on."""
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def pytest_report_header(config):
    return subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'check_lock.py'),
         '--headline'],
        capture_output=True, text=True).stdout.strip()
