"""The package's layers and names: which layer may import which, the one
interface between a model and the bi-level optim wrapper, the registries
that build the hypergradients, and the deprecated names old configs use."""
import ast
import glob
import os.path as osp
import warnings
from typing import Dict, List, Set

import pytest
import torch
from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample

from mmengine.registry import MODEL_WRAPPERS, DefaultScope

from torch import nn

import mmbodvcl  # noqa: F401  (registration)
from mmbodvcl.engine import HYPERGRADIENTS, build_hypergradient
from mmbodvcl.engine.model_wrappers import ReducerFreeDataParallel
from mmbodvcl.functional.hypergrad import (AidCg, AidFd, AidMinres, AidNmn,
                                           Hypergradient, ItdFd)
from mmbodvcl.functional.hypergrad import base as hypergrad_base
from mmbodvcl.models.necks import PerFrameProjectionNeck

PACKAGE = osp.dirname(osp.abspath(mmbodvcl.__file__))

#: For each layer (a sub-package of mmbodvcl), the layers it must not
#: import. functional/ is pure PyTorch: no other layer, no mm* package.
FORBIDDEN: Dict[str, Set[str]] = {
    'functional': {'apis', 'datasets', 'engine', 'evaluation', 'experiments',
                   'models', 'mmaction', 'mmcv', 'mmengine', 'mmdet'},
    'models': {'apis', 'engine', 'evaluation', 'experiments'},
    'datasets': {'apis', 'engine', 'evaluation', 'experiments', 'models'},
    'engine': {'apis', 'experiments', 'models'},
}


def imported_layers(path: str) -> Set[str]:
    """The sub-packages of mmbodvcl (by their name) and the top-level
    packages that the module at ``path`` imports, relative imports
    resolved."""
    module = osp.relpath(path, osp.dirname(PACKAGE))[:-3].split(osp.sep)
    if module[-1] == '__init__':
        module = module[:-1] + ['']
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
        if isinstance(node, ast.Import):
            names = [alias.name.split('.') for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parent = module[:-node.level] if node.level else []
            names = [parent + (node.module or '').split('.')]
        else:
            continue
        for name in names:
            name = [part for part in name if part]
            found.add(name[1] if name[0] == 'mmbodvcl' and len(name) > 1
                      else name[0])
    return found


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_layers_import_downwards_only(layer):
    wrong: List[str] = []
    for path in sorted(glob.glob(osp.join(PACKAGE, layer, '**', '*.py'),
                                 recursive=True)):
        bad = imported_layers(path) & FORBIDDEN[layer]
        if bad:
            wrong.append(f'{osp.relpath(path, PACKAGE)}: {sorted(bad)}')
    assert wrong == []


def test_the_package_does_not_import_the_tests():
    for path in glob.glob(osp.join(PACKAGE, '**', '*.py'), recursive=True):
        assert not imported_layers(path) & {'helpers', 'tests', 'conftest'}, \
            path


def test_the_import_check_sees_relative_and_absolute_imports(tmp_path):
    path = osp.join(PACKAGE, 'models', 'necks', 'per_frame_projection_neck.py')
    assert {'mmaction', 'mmengine', 'torch', 'models'} <= \
        imported_layers(path)  # ``from ..utils import`` is models/utils


def test_hypergradient_family_bases_live_in_base():
    for name in ('FiniteDifference', 'HessianSolve', 'KrylovSolve'):
        assert getattr(hypergrad_base, name).__module__ == \
            hypergrad_base.__name__
    assert issubclass(AidFd, hypergrad_base.FiniteDifference)
    assert issubclass(ItdFd, hypergrad_base.FiniteDifference)
    assert issubclass(AidNmn, hypergrad_base.HessianSolve)
    assert issubclass(AidCg, hypergrad_base.KrylovSolve)
    assert issubclass(AidMinres, hypergrad_base.KrylovSolve)


class _Halved(Hypergradient):
    """A method known only to the registry: half the upper gradient."""

    def correct(self, path, upper_grad, problem, stats):
        return [0.5 * v for v in upper_grad]


def test_hypergradients_are_built_by_their_registry():
    HYPERGRADIENTS.register_module('halved_for_test', module=_Halved,
                                   force=True)
    try:
        method = build_hypergradient(
            dict(type='halved_for_test', inner_steps=2))
    finally:
        HYPERGRADIENTS.module_dict.pop('halved_for_test')
    assert isinstance(method, _Halved) and method.inner_steps == 2
    assert isinstance(build_hypergradient(dict(type=ItdFd)), ItdFd)
    assert type(build_hypergradient()).__name__ == 'ItdFd'  # the default
    with pytest.raises(ValueError, match="'halved_for_test' is unknown"):
        build_hypergradient(dict(type='halved_for_test'))
    with pytest.raises(ValueError, match=r"\['beta'\] are not arguments"):
        build_hypergradient(dict(type='aid_fd', beta=1))


class _Wrapper:
    """An optim wrapper known to the model only by its documented method."""

    def __init__(self):
        self.calls = []

    def update_params_bilevel(self, named_params, lower_loss, upper_loss):
        self.calls.append([name for name, _ in named_params])
        return {}


def test_a_model_meets_the_bilevel_wrapper_through_one_method():
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = _tiny_bodvcl()
    wrapper = _Wrapper()
    data = dict(
        inputs=[torch.zeros(2, 3, 4, 16, 16, dtype=torch.uint8)] * 2,
        data_samples=[ActionDataSample(), ActionDataSample()])
    model.train_step(data, wrapper)
    assert len(wrapper.calls) == 1
    assert 'backbone.conv1.conv.weight' in wrapper.calls[0]


def _tiny_bodvcl() -> nn.Module:
    return MODELS.build(
        dict(type='VSimCLR',
             backbone=dict(type='ResNet3dSlowOnly', depth=18,
                           pretrained=None, base_channels=8,
                           in_channels=3, norm_eval=False),
             neck=dict(type='PerFrameProjectionNeck', in_channels=64,
                       hid_channels=16, out_channels=8),
             head=dict(type='MultiViewContrastiveHead',
                       loss=dict(type='MultiViewInfoNCELoss')),
             decoupler=dict(type='KoopmanDecoupler'),
             data_preprocessor=dict(type='MultiViewDataPreprocessor')))


def test_deprecated_names_build_the_renamed_classes():
    assert MODELS.get('KoopmanNeck') is PerFrameProjectionNeck
    module = nn.Linear(2, 2)  # no process group: broadcasts are no-ops
    with pytest.warns(FutureWarning, match='ReducerFreeDataParallel'):
        old = MODEL_WRAPPERS.build(
            dict(type='BiLevelDistributedDataParallel', module=module))
    assert isinstance(old, ReducerFreeDataParallel)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        new = MODEL_WRAPPERS.build(
            dict(type='ReducerFreeDataParallel', module=module))
    assert type(new) is ReducerFreeDataParallel
