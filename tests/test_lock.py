"""The installed environment is the locked one (requirements/lock.txt), and
tools/check_lock.py names every difference."""
import os.path as osp
import subprocess
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
LOCK = osp.join(ROOT, 'requirements', 'lock.txt')


def check_lock(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, osp.join(ROOT, 'tools', 'check_lock.py'), *args],
        capture_output=True, text=True)


def read_lock(path: str) -> dict:
    with open(path) as f:
        pins = [line.strip().split('==') for line in f
                if line.strip() and not line.startswith('#')]
    return dict(pins)


def test_installed_versions_match_the_lock():
    result = check_lock(LOCK)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith('tested with Python')


def test_the_lock_pins_the_stack_exactly():
    locked = read_lock(LOCK)
    for name in ('torch', 'mmengine', 'mmcv', 'mmaction2', 'mmdet', 'numpy',
                 'opencv-python', 'pip', 'setuptools', 'pytest'):
        assert name in locked, name
    assert locked['torch'].startswith('2.13.0')
    assert 'mmbodvcl' not in locked  # the checkout itself is not locked


def test_differences_are_named(tmp_path):
    locked = read_lock(LOCK)
    locked['numpy'] = '0.0.1'
    del locked['scipy']
    locked['not-a-real-package'] = '1.0'
    changed = tmp_path / 'lock.txt'
    changed.write_text(''.join(f'{k}=={v}\n' for k, v in locked.items()))
    result = check_lock(str(changed))
    assert result.returncode == 1
    assert 'numpy: locked 0.0.1, installed' in result.stderr
    assert 'scipy: ' in result.stderr and 'not in the lock' in result.stderr
    assert 'not-a-real-package: locked 1.0, not installed' in result.stderr

    changed.write_text('numpy>=2\n')
    result = check_lock(str(changed))
    assert result.returncode == 2
    assert 'lock.txt:1: expected name==version' in result.stderr
