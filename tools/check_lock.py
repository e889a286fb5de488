"""Compare the installed Python packages with requirements/lock.txt.

    python tools/check_lock.py                # check, exit 1 on a mismatch
    python tools/check_lock.py --headline     # the main packages' versions
    python tools/check_lock.py --write LOCK   # freeze this environment

The lock names every distribution of the test environment (Linux, Python
3.11, torch 2.13.0 CPU) with its exact version; the Makefile installs with it
as a pip constraints file, and the test suite checks it (tests/test_lock.py).
"""
import argparse
import os.path as osp
import platform
import re
import sys
from importlib import metadata
from typing import Dict, List

HEADER = """\
# The locked CPU test environment of mmbodvcl: every distribution that
# `make env` installs, with its exact version (Linux x86_64, Python {python},
# torch 2.13.0 CPU). The Makefile passes it to every pip install as a
# constraints file; tests/test_lock.py checks the installed versions.
# Refresh with `make lock` (docs/installation.md); do not edit by hand.
"""
#: The packages whose versions a test run reports first.
HEADLINE = ('torch', 'mmengine', 'mmcv', 'mmaction2', 'mmdet', 'numpy',
            'opencv-python', 'decord', 'scipy', 'pillow', 'matplotlib')
DEFAULT_LOCK = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))),
                        'requirements', 'lock.txt')
# The project itself is installed editable from the checkout, not locked.
_SELF = 'mmbodvcl'


def canonical(name: str) -> str:
    """PEP 503 normalised distribution name."""
    return re.sub(r'[-_.]+', '-', name).lower()


def installed() -> Dict[str, str]:
    """``{name: version}`` of the distributions this interpreter sees."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata['Name']
        if name and canonical(name) != _SELF:
            found.setdefault(canonical(name), dist.version)
    return found


def read_lock(path: str) -> Dict[str, str]:
    """``{name: version}`` of a lock file of ``name==version`` lines."""
    locked = {}
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            name, sep, version = line.partition('==')
            if not sep or not name or not version:
                raise ValueError(f'{path}:{number}: expected name==version, '
                                 f'got {line!r}')
            locked[canonical(name)] = version.strip()
    return locked


def mismatches(locked: Dict[str, str], found: Dict[str, str]) -> List[str]:
    """One line per distribution that differs from the lock."""
    lines = []
    for name in sorted(set(locked) | set(found)):
        want, have = locked.get(name), found.get(name)
        if want == have:
            continue
        if have is None:
            lines.append(f'{name}: locked {want}, not installed')
        elif want is None:
            lines.append(f'{name}: {have} installed, not in the lock')
        else:
            lines.append(f'{name}: locked {want}, installed {have}')
    return lines


def headline(found: Dict[str, str]) -> str:
    return 'tested with Python {}: {}'.format(
        platform.python_version(),
        ', '.join(f'{name} {found[name]}' for name in HEADLINE
                  if name in found))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('lock', nargs='?', default=DEFAULT_LOCK,
                        help='the lock file (default: %(default)s)')
    parser.add_argument('--write', action='store_true',
                        help='write the lock from this environment')
    parser.add_argument('--headline', action='store_true',
                        help='only print the versions of the main packages')
    args = parser.parse_args()
    found = installed()
    if args.headline:
        print(headline(found))
        return 0
    if args.write:
        with open(args.lock, 'w', encoding='utf-8') as f:
            f.write(HEADER.format(python=platform.python_version()))
            f.writelines(f'{name}=={found[name]}\n' for name in sorted(found))
        print(f'wrote {len(found)} pinned distributions to {args.lock}')
        return 0
    try:
        problems = mismatches(read_lock(args.lock), found)
    except (OSError, ValueError) as error:
        print(f'check_lock: {error}', file=sys.stderr)
        return 2
    if problems:
        print(f'The environment differs from {args.lock}:\n  ' +
              '\n  '.join(problems) + '\nRebuild it: make clean-env test',
              file=sys.stderr)
        return 1
    print(headline(found))
    return 0


if __name__ == '__main__':
    sys.exit(main())
