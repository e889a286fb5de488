"""The documentation names only what exists, and the model zoo lists every
config.

Every repository path (``configs/...``, ``tools/...``, ``mmbodvcl/...``,
...), Python name (``mmbodvcl.x.y``), MMAction2 config (``mmaction::...``)
and relative link in README.md, CHANGELOG.md and docs/*.md must exist, and
no document may name an absolute path of a machine. A path that the reader
is asked to write themselves is allowed when its paragraph says so with the
words "file to create" (or "files to create").
"""
import glob
import importlib
import os.path as osp
import re
from typing import Iterator, List, Tuple

import pytest
import yaml
from mmengine.utils import get_installed_path

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
DOCS = sorted(
    [osp.join(ROOT, 'README.md'), osp.join(ROOT, 'CHANGELOG.md')] +
    glob.glob(osp.join(ROOT, 'docs', '*.md')) +
    glob.glob(osp.join(ROOT, 'configs', '*', 'README.md')))
TOP_FOLDERS = ('benchmarks', 'configs', 'docs', 'mmbodvcl', 'requirements',
               'tests', 'tools')
# A repository path: a top folder, then path characters (with shell
# patterns: ``*``, ``{a,b}``, ``$VAR``); it ends before punctuation that
# closes a sentence or a code span. ``x/configs/...`` (another
# repository's path) is not one.
REPO_PATH = re.compile(r'(?<![\w./-])((?:%s)/[\w./*{},<>$-]*[\w*/}>])' %
                       '|'.join(TOP_FOLDERS))
BRACES = re.compile(r'\{([^{}]*)\}')
PYTHON_NAME = re.compile(r'(?<![\w./])(mmbodvcl(?:\.\w+)+)')
MMACTION_CONFIG = re.compile(r'mmaction::([\w./-]+\.py)')
LINK = re.compile(r'\]\(([^)#\s]+)(?:#[^)]*)?\)')
# Home folders, mounts and scratch space of a machine, not of the project.
MACHINE_PATH = re.compile(
    r'(?<![\w.:~/-])/(?:work|home|root|Users|mnt|scratch|tmp)/\S+')
# A placeholder, not a path: <name>, $VAR, ...
PLACEHOLDER = re.compile(r'[<>$]')
TO_CREATE = re.compile(r'files? to create', re.IGNORECASE)


def paragraphs(path: str) -> Iterator[Tuple[int, str]]:
    """``(first line number, text)`` of every blank-line separated block."""
    with open(path, encoding='utf-8') as f:
        text = f.read()
    line = 1
    for block in re.split(r'(\n\s*\n)', text):
        if block.strip():
            yield line, block
        line += block.count('\n')


def _expand_braces(name: str) -> List[str]:
    """The names of a shell brace pattern: ``a{1,2}`` -> ``a1``, ``a2``."""
    match = BRACES.search(name)
    if match is None:
        return [name]
    return [
        expanded for choice in match.group(1).split(',')
        for expanded in _expand_braces(name[:match.start()] + choice +
                                       name[match.end():])
    ]


def _repo_path_exists(name: str) -> bool:
    return all(
        glob.glob(osp.join(ROOT, each)) if '*' in each else osp.exists(
            osp.join(ROOT, each)) for each in _expand_braces(name))


def _python_name_exists(dotted: str) -> bool:
    parts = dotted.split('.')
    package = osp.dirname(importlib.import_module('mmbodvcl').__file__)
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module('.'.join(parts[:cut]))
        except ImportError:
            continue
        # Only modules of the imported package count (not a stale copy of
        # another checkout that an editable install could still serve).
        if not osp.realpath(obj.__file__).startswith(
                osp.realpath(package)):
            return False

        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


def _mmaction_config_exists(relative: str) -> bool:
    return osp.isfile(
        osp.join(get_installed_path('mmaction'), '.mim', 'configs', relative))


def missing_names(path: str) -> List[str]:
    """``file:line: name`` of every name in ``path`` that does not exist."""
    problems = []
    where = osp.relpath(path, ROOT)
    for line, block in paragraphs(path):
        may_create = bool(TO_CREATE.search(block))
        checks = [(REPO_PATH, _repo_path_exists),
                  (PYTHON_NAME, _python_name_exists),
                  (MMACTION_CONFIG, _mmaction_config_exists)]
        found = [(name, exists) for pattern, exists in checks
                 for name in pattern.findall(block)]
        for name in LINK.findall(block):
            if '://' not in name and not name.startswith('mailto:'):
                target = osp.relpath(
                    osp.join(osp.dirname(path), name), ROOT)
                found.append((target, _repo_path_exists))
        for name, exists in found:
            if PLACEHOLDER.search(name) or exists(name) or may_create:
                continue
            problems.append(f'{where}:{line}: {name}')
    return problems


@pytest.mark.parametrize('path', DOCS, ids=lambda p: osp.relpath(p, ROOT))
def test_named_paths_configs_and_tools_exist(path):
    assert missing_names(path) == [], (
        'named but missing (fix the name, or say in the paragraph that it '
        'is a file to create)')


@pytest.mark.parametrize('path', DOCS, ids=lambda p: osp.relpath(p, ROOT))
def test_no_machine_paths(path):
    found = [
        f'{osp.relpath(path, ROOT)}:{line}: {match}'
        for line, block in paragraphs(path)
        for match in MACHINE_PATH.findall(block)
    ]
    assert found == [], 'absolute paths of a machine: write them relative'


def test_the_check_finds_what_is_missing(tmp_path):
    """The checker itself: a missing path, Python name and link are
    reported, a file to create and a placeholder are not."""
    doc = tmp_path / 'doc.md'
    doc.write_text(
        'Run `tools/train.py configs/nowhere/missing.py` and read\n'
        '[the guide](no_such_doc.md); `mmbodvcl.no_such_module.fn`.\n\n'
        'Write `configs/mine/new_config.py`, a file to create.\n\n'
        'Any `configs/<family>/<name>.py`; `mmbodvcl.engine.optim_wrappers`;\n'
        '`tools/{train,test}.py`, but not `tools/{train,tset}.py`.\n',
        encoding='utf-8')
    found = [entry.split(': ', 1)[1] for entry in missing_names(str(doc))]
    link = osp.relpath(str(tmp_path / 'no_such_doc.md'), ROOT)
    assert sorted(found) == sorted(
        ['configs/nowhere/missing.py', 'mmbodvcl.no_such_module.fn', link,
         'tools/{train,tset}.py'])
    assert MACHINE_PATH.findall('see /home/me/data and ~/x, s3://b/tmp/y')\
        == ['/home/me/data']


METAFILES = sorted(glob.glob(osp.join(ROOT, 'configs', '*', 'metafile.yml')))


@pytest.mark.parametrize('path', METAFILES,
                         ids=lambda p: osp.relpath(p, ROOT))
def test_metafile_lists_every_config_of_its_folder(path):
    """The model zoo's metafile names each config of its folder once (new
    configs must be added), and each README row it has."""
    with open(path, encoding='utf-8') as f:
        models = yaml.safe_load(f)['Models']
    folder = osp.dirname(path)
    listed = sorted(model['Config'] for model in models)
    configs = sorted(
        osp.relpath(config, ROOT)
        for config in glob.glob(osp.join(folder, '**', '*.py'), recursive=True)
        if '_base_' not in osp.relpath(config, folder).split(osp.sep))
    assert listed == configs
    with open(osp.join(folder, 'README.md'), encoding='utf-8') as f:
        readme = f.read()
    missing = [config for config in configs
               if f'({osp.relpath(osp.join(ROOT, config), folder)})'
               not in readme]
    assert missing == [], 'configs without a row in the README'
