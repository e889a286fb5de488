"""Every pretraining config (configs/bodvcl, configs/baselines) builds its
model and dataset and runs one training iteration through MMEngine's Runner
on generated videos, in the decoupler form (no deprecation warning); each
BOD-VCL config is its baseline plus exactly what BOD-VCL adds, each ablation
its parent plus exactly its setting, file names state the setting, the LARS
exclusion holds for any depth, and the configs hold the paper's recipe.

Test-only overrides are applied by :func:`shrink` and nothing else: a narrow
backbone (per backbone type), 32 px crops, 2 videos per batch, a short MoCo
queue and BYOL predictor, the generated data set, one epoch of one
iteration. Clip length, views, Koopman dimension and every BOD-VCL switch stay
as configured. New config files are picked up by the glob.
"""
import copy
import glob
import inspect
import math
import os.path as osp
import re
import uuid
from typing import Dict, List, Tuple

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.modules.instancenorm import _InstanceNorm

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from helpers import make_video_dataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN_CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs/bodvcl/**/*.py'), recursive=True) +
    glob.glob(osp.join(REPO, 'configs/baselines/**/*.py'), recursive=True))
ALGORITHMS = ('vsimclr', 'vmoco', 'vbyol', 'vswav')
MAIN = {
    alg: osp.join(REPO, f'configs/bodvcl/{alg}_slowr50_k400.py')
    for alg in ALGORITHMS
}
BODVCL = sorted(glob.glob(osp.join(REPO, 'configs/bodvcl/*.py')))
ABLATIONS = sorted(glob.glob(osp.join(REPO, 'configs/bodvcl/ablations/*.py')))
BODVCL_BASE = osp.join(REPO, 'configs/_base_/bodvcl.py')
SCHEDULE = osp.join(REPO, 'configs/_base_/schedules/lars_200e.py')
# Written by mmbodvcl/models/algorithms/legacy.py for configs in the old form.
DEPRECATION = 'Deprecated model arguments'
SIZE = 32  # crop side in the tests
# The longest clip span of any config is 16 frames at interval 4: 61 frames.
NUM_FRAMES = 72

# Narrow stand-ins per backbone type: (backbone overrides, output channels).
NARROW_BACKBONES = {
    'ResNet3dSlowOnly': (dict(depth=18, base_channels=8), 64),
    'ResNet3d': (dict(base_channels=8), 64),
    'ResNet2Plus1d': (dict(base_channels=8), 64),
    # S3D-G has no width argument; it is small enough at 32 px.
    'S3DG': (dict(), 1024),
    'PerFrameViT': (dict(img_size=SIZE, embed_dims=32, depth=1,
                         num_heads=2), 32),
}
# Downstream model of each backbone type: a pretrained backbone must load
# into it with the same parameter names.
DOWNSTREAM_MODELS = {
    'ResNet3dSlowOnly': 'slowonly_r50.py',
    'ResNet3d': 'r3d_18.py',
    'ResNet2Plus1d': 'r2plus1d_18.py',
    'S3DG': 's3dg.py',
    'PerFrameViT': 'vit_b.py',
}


def config_id(path: str) -> str:
    return osp.relpath(path, osp.join(REPO, 'configs'))


pytestmark = pytest.mark.usefixtures('mmaction_scope')


@pytest.fixture(scope='module')
def video_ann(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('k400_tiny'))
    return make_video_dataset(root, num_videos=2, num_frames=NUM_FRAMES,
                              size=(48, 64))


def resize_to(transforms: List[Dict], size: int) -> int:
    """Set every fixed-size ``Resize`` (nested pipelines included) to
    ``size``; returns how many were changed."""
    changed = 0
    for transform in transforms:
        if transform.get('type') == 'Resize' and \
                transform.get('keep_ratio') is False:
            transform['scale'] = (size, size)
            changed += 1
        for value in transform.values():
            if isinstance(value, list) and value and isinstance(
                    value[0], dict):
                changed += resize_to(value, size)
    return changed


def narrow_backbone(model: Config) -> int:
    """Swap in the narrow stand-in of ``model.backbone``; returns its output
    channels."""
    backbone_type = model['backbone']['type']
    if backbone_type not in NARROW_BACKBONES:
        pytest.fail(f'no narrow stand-in for backbone {backbone_type!r}: add '
                    'it to NARROW_BACKBONES in tests/test_configs.py')
    overrides, channels = NARROW_BACKBONES[backbone_type]
    model['backbone'].update(overrides)
    return channels


def shrink_model(model: dict) -> None:
    """The test-only overrides of a model config, in place."""
    channels = narrow_backbone(model)
    model['neck'].update(in_channels=channels, hid_channels=32)
    if model['head']['type'] == 'MoCoQueueHead':
        model['head']['queue_len'] = 16
    if model['head']['type'] == 'BYOLPredictionHead':
        model['head']['hidden_channels'] = 32


def shrink(cfg: Config, ann_file: str, work_dir: str) -> Config:
    """The test-only overrides, all in one place."""
    cfg = copy.deepcopy(cfg)
    shrink_model(cfg.model)
    return shrink_run(cfg, ann_file, work_dir)


def shrink_run(cfg: Config, ann_file: str, work_dir: str) -> Config:
    """The overrides of data and run (also tests/test_concepts_configs.py):
    the generated data set, 2 videos per batch, 32 px, one epoch of one
    iteration, a seed."""
    loader = cfg.train_dataloader
    loader.update(batch_size=2, num_workers=0, persistent_workers=False)
    loader.dataset.update(ann_file=ann_file,
                          data_prefix=dict(video=osp.dirname(ann_file)))
    assert resize_to(loader.dataset.pipeline, SIZE) == 1, \
        'expected one fixed-size Resize in the per-view augmentation'

    cfg.train_cfg.max_epochs = 1  # 2 videos in batches of 2: one iteration
    cfg.work_dir = work_dir
    cfg.experiment_name = f'test_configs_{uuid.uuid4().hex[:8]}'
    cfg.log_level = 'WARNING'
    # Same initial weights and clips whatever ran before in the process.
    cfg.randomness = dict(seed=0)
    return cfg


def build_runner(cfg: Config) -> Runner:
    """``Runner.from_cfg(cfg)``, except that the Runner keeps only the
    settings it reads back from its ``cfg`` (``model_wrapper_cfg``): the full
    config is formatted by yapf every time the Runner logs, dumps or
    checkpoints it, which is most of a test's time on 2 cores."""
    arguments = {
        name: cfg[name]
        for name in inspect.signature(Runner).parameters
        if name in cfg and name != 'cfg'
    }
    kept = Config({
        key: cfg[key]
        for key in ('model_wrapper_cfg', 'default_scope') if key in cfg
    })
    return Runner(**arguments, cfg=kept)


class ParameterChange(Hook):
    """Records how far the backbone's parameters moved in each iteration,
    whether they stayed finite, and the clips of the last batch."""

    def __init__(self) -> None:
        self.changes: List[float] = []
        self.finite = True

    def _backbone(self, runner: Runner) -> torch.nn.Module:
        return runner.model.backbone

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
        # inputs: one (V, C, T, H, W) tensor per video
        self.clips = sum(len(video) for video in data_batch['inputs'])
        self._before = [
            p.detach().clone() for p in self._backbone(runner).parameters()
        ]

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        params = list(self._backbone(runner).parameters())
        self.finite &= all(bool(p.isfinite().all()) for p in params)
        self.changes.append(
            max(float((p.detach() - b).abs().max())
                for p, b in zip(params, self._before)))


def expected_parts(model: dict) -> Tuple[str, ...]:
    """Parts contrasted, as the config states them."""
    decoupler = model.get('decoupler') or {}
    if decoupler.get('type') == 'KoopmanDecoupler' and decoupler.get(
            'contrast', 'split') == 'split':
        return ('static', 'dynamic')
    return ('unified', )


def runner_log(runner: Runner) -> str:
    with open(osp.join(runner.log_dir, f'{runner.timestamp}.log')) as f:
        return f.read()


@pytest.mark.parametrize('config', PRETRAIN_CONFIGS, ids=config_id)
def test_one_training_iteration(config, video_ann, tmp_path):
    cfg = shrink(Config.fromfile(config), video_ann, str(tmp_path))
    runner = build_runner(cfg)
    # written in the decoupler form: legacy.py had nothing to rewrite
    assert DEPRECATION not in runner_log(runner)
    recorder = ParameterChange()
    runner.register_hook(recorder)
    runner.train()

    assert runner.iter == 1
    assert type(runner.model).__name__ == cfg.model.type
    assert type(runner.optim_wrapper).__name__ == cfg.optim_wrapper.type
    hub = runner.message_hub
    loss = hub.get_scalar('train/loss').current()
    assert math.isfinite(loss), f'{config_id(config)}: loss {loss}'
    parts = expected_parts(cfg.model)
    assert tuple(runner.model.decoupler.parts) == parts
    for part in parts:
        assert math.isfinite(hub.get_scalar(f'train/loss_{part}').current())
    if parts == ('static', 'dynamic'):
        # Per-clip mode counts averaged over the iteration's clips: whole
        # multiples of 1 / clips (a count that is not one fails).
        for key in ('num_static_modes', 'num_dynamic_modes'):
            count = hub.get_scalar(f'train/{key}').current() * recorder.clips
            assert abs(count - round(count)) < 1e-4, (key, count)
    if cfg.optim_wrapper.type == 'BiLevelOptimWrapper' or \
            cfg.model.with_lower_loss:
        assert math.isfinite(hub.get_scalar('train/loss_pred').current())
    assert recorder.finite, 'non-finite backbone parameters after the step'
    assert recorder.changes and recorder.changes[0] > 0, \
        'the backbone did not move in the training iteration'

    checkpoint = torch.load(
        osp.join(str(tmp_path), 'epoch_1.pth'), map_location='cpu')
    assert any(key.startswith('backbone.') for key in checkpoint['state_dict'])


def test_the_runner_log_shows_a_legacy_config(video_ann, tmp_path):
    """The check above can fail: a model in the old form (``decouple``,
    Koopman options in the neck) leaves the deprecation warning in the
    Runner's log."""
    cfg = shrink(Config.fromfile(MAIN['vsimclr']), video_ann, str(tmp_path))
    decoupler = cfg.model.pop('decoupler')
    cfg.model.update(decouple=True, with_pred_loss=False)
    cfg.model.pop('with_lower_loss')
    cfg.model.neck.update(type='KoopmanNeck', xi=decoupler.xi,
                          nu=decoupler.nu)
    assert DEPRECATION in runner_log(build_runner(cfg))


def flatten(value, prefix: str = '') -> Dict[str, object]:
    if isinstance(value, dict):
        flat = {}
        for key, item in value.items():
            flat.update(flatten(item, f'{prefix}{key}.'))
        return flat
    if isinstance(value, list):
        flat = {}
        for index, item in enumerate(value):
            flat.update(flatten(item, f'{prefix}{index}.'))
        return flat
    return {prefix[:-1]: value}


def resolved(path: str) -> Dict[str, object]:
    """A config file as MMEngine resolves it, as plain dicts."""
    return Config.fromfile(path).to_dict()


def with_changes(cfg: Dict[str, object], changes: dict) -> Dict[str, object]:
    """``cfg`` with ``changes`` merged in as ``--cfg-options`` would."""
    cfg = Config(copy.deepcopy(cfg))
    cfg.merge_from_dict(copy.deepcopy(changes))
    return cfg.to_dict()


def assert_same_config(ours: Dict[str, object],
                       expected: Dict[str, object]) -> None:
    """Key-by-key equality, reporting the keys that differ."""
    ours, expected = flatten(ours), flatten(expected)
    differing = {
        key: (ours.get(key, '<absent>'), expected.get(key, '<absent>'))
        for key in set(ours) | set(expected)
        if ours.get(key, '<absent>') != expected.get(key, '<absent>')
    }
    assert not differing, f'(ours, expected) per key: {differing}'


@pytest.mark.parametrize('config', BODVCL, ids=config_id)
def test_bodvcl_is_its_baseline_plus_exactly_the_decoupling(config):
    """The BOD-VCL config = its baseline + model.decoupler + the bi-level
    optim wrapper (type, hypergrad and whatever else configs/_base_/bodvcl.py
    puts in it) + the bi-level DDP wrapper; nothing else differs."""
    baseline = osp.join(REPO, 'configs/baselines', osp.basename(config))
    assert osp.isfile(baseline), f'no baseline for {config}'
    plain, bodvcl = resolved(baseline), resolved(BODVCL_BASE)
    assert 'decoupler' not in plain['model']
    assert plain['optim_wrapper']['type'] == 'OptimWrapper'
    # single level: MMEngine's own DDP wrapper (the default)
    assert 'model_wrapper_cfg' not in plain
    assert bodvcl['koopman_decoupler']['type'] == 'KoopmanDecoupler'
    assert bodvcl['bilevel_optim_wrapper']['type'] == 'BiLevelOptimWrapper'
    assert bodvcl['bilevel_model_wrapper']['type'] == 'ReducerFreeDataParallel'
    expected = with_changes(
        plain, {
            'model.decoupler': bodvcl['koopman_decoupler'],
            'optim_wrapper': bodvcl['bilevel_optim_wrapper'],
            'model_wrapper_cfg': bodvcl['bilevel_model_wrapper'],
            **bodvcl,  # its variables are inherited as they are
        })
    assert_same_config(resolved(config), expected)


def ablation_changes(name: str, algorithm: str) -> Tuple[str, dict]:
    """(parent config, changes) that the paper's ablation ``name`` means."""
    baseline = f'configs/baselines/{algorithm}_slowr50_k400.py'
    bodvcl = f'configs/bodvcl/{algorithm}_slowr50_k400.py'
    koopman = resolved(BODVCL_BASE)['koopman_decoupler']
    rules = [
        (r'plus_lpred', baseline,
         lambda: {'model.decoupler': dict(koopman, contrast='unified'),
                  'model.with_lower_loss': True}),
        (r'single_level', baseline,
         lambda: {'model.decoupler': koopman,
                  'model.with_lower_loss': True}),
        (r'strict', bodvcl, lambda: {'model.strict_lower': True}),
        (r'xi(.+)', bodvcl, lambda v: {'model.decoupler.xi': float(v)}),
        (r'nu(.+)', bodvcl, lambda v: {'model.decoupler.nu': float(v)}),
        (r'm(\d+)', bodvcl, lambda v: {'model.neck.out_channels': int(v)}),
        (r'inner(\d+)', bodvcl,
         lambda v: {'optim_wrapper.hypergrad.inner_steps': int(v)}),
        (r'hypergrad_(.+)', bodvcl,
         lambda v: {'optim_wrapper.hypergrad.type': v}),
    ]
    for pattern, parent, changes in rules:
        match = re.fullmatch(pattern, name)
        if match:
            return parent, changes(*match.groups())
    pytest.fail(f'ablation {name!r}: no rule in tests/test_configs.py '
                'says what it changes')


@pytest.mark.parametrize('config', ABLATIONS, ids=config_id)
def test_ablation_is_its_parent_plus_exactly_its_setting(config):
    stem = osp.splitext(osp.basename(config))[0]
    algorithm, ablation = re.fullmatch(r'([a-z]+)_slowr50_k400_(.+)',
                                       stem).groups()
    parent, changes = ablation_changes(ablation, algorithm)
    helpers = resolved(BODVCL_BASE)
    ours = resolved(config)
    expected = with_changes(resolved(osp.join(REPO, parent)), changes)
    for key in helpers:  # inherited helper variables, used or not
        ours.pop(key, None)
        expected.pop(key, None)
    assert_same_config(ours, expected)


NAME = re.compile(r'(?P<method>[a-z0-9]+)_(?P<backbone>[a-z0-9]+)'
                  r'(_(?P<clip_len>\d+)x(?P<frame_interval>\d+))?'
                  r'(_(?P<size>\d+)px)?(_rho(?P<num_views>\d+))?'
                  r'(_(?P<max_epochs>\d+)e)?_(?P<dataset>k400)'
                  r'(_(?P<ablation>[a-z0-9_.\-]+))?\.py')
# Settings a name leaves out (docs/configs.md).
NAME_DEFAULTS = dict(clip_len=8, frame_interval=8, size=224, num_views=2,
                     max_epochs=200)


@pytest.mark.parametrize('config', PRETRAIN_CONFIGS, ids=config_id)
def test_file_name_states_the_setting(config):
    """``{method}_{backbone}[_{T}x{tau}][_{res}px][_rho{V}][_{E}e]_{dataset}
    [_{ablation}].py`` (docs/configs.md), and the config does what its name
    says."""
    match = NAME.fullmatch(osp.basename(config))
    assert match, f'{config_id(config)} does not follow the naming scheme'
    stated = {key: int(match[key] or default)
              for key, default in NAME_DEFAULTS.items()}
    cfg = Config.fromfile(config)
    sampler = cfg.train_dataloader.dataset.pipeline[1]
    resize = [t for t in cfg.train_dataloader.dataset.pipeline[3].transforms
              if t.type == 'Resize']
    actual = dict(clip_len=sampler.clip_len,
                  frame_interval=sampler.frame_interval,
                  size=resize[0].scale[0], num_views=sampler.num_views,
                  max_epochs=cfg.train_cfg.max_epochs)
    assert actual == stated
    assert cfg.model.type.lower() == match['method']


NORMS = (_BatchNorm, _InstanceNorm, nn.GroupNorm, nn.LayerNorm)


def lars_settings(model: nn.Module) -> Dict[str, Tuple[float, bool]]:
    """(weight decay, lars_exclude) of every trained parameter, with the
    optim wrapper of the schedule base every pretraining config uses."""
    wrapper = build_optim_wrapper(model,
                                  Config.fromfile(SCHEDULE).optim_wrapper)
    names = {id(p): n for n, p in model.named_parameters()}
    return {
        names[id(param)]: (group['weight_decay'],
                           group.get('lars_exclude', False))
        for group in wrapper.optimizer.param_groups
        for param in group['params'] if param.requires_grad
    }


def assert_norms_and_biases_excluded(model: nn.Module) -> None:
    """Norm-layer parameters and biases: no LARS, no weight decay; every
    other trained parameter (conv/linear weights, ...): both."""
    decay = Config.fromfile(SCHEDULE).optimizer.weight_decay
    expected = {}
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if param.requires_grad:
                # ViTs' attention keeps its q and v biases as q_bias, v_bias
                excluded = isinstance(module, NORMS) or name.endswith('bias')
                expected[f'{module_name}.{name}'.lstrip('.')] = (
                    (0., True) if excluded else (decay, False))
    assert any(setting[1] for setting in expected.values())
    assert any(not setting[1] for setting in expected.values())
    settings = lars_settings(model)
    wrong = {k: v for k, v in settings.items() if expected[k] != v}
    assert not wrong, f'(weight decay, lars_exclude) wrong for {wrong}'
    assert settings.keys() == expected.keys()


@pytest.mark.parametrize('num_layers', [1, 2, 3, 4])
def test_lars_exclusion_holds_for_a_neck_of_any_depth(num_layers):
    neck = MODELS.build(
        dict(type='PerFrameProjectionNeck', in_channels=16, hid_channels=8,
             out_channels=4, num_layers=num_layers, with_bias=True))
    assert_norms_and_biases_excluded(neck)


def test_lars_exclusion_holds_for_the_byol_predictor():
    assert_norms_and_biases_excluded(
        MODELS.build(dict(type='BYOLPredictionHead', in_channels=4,
                          hidden_channels=8, out_channels=4)))


@pytest.mark.parametrize(
    'config', sorted(MAIN.values()) + [
        osp.join(REPO, f'configs/bodvcl/vbyol_{backbone}_k400.py')
        for backbone in ('r3d18_16x4_112px_rho4', 'r2plus1d18_16x4_112px_rho4',
                         's3dg_16x4_112px_rho4', 'vitb_16x4_rho4_800e')
    ],
    ids=config_id)
def test_lars_exclusion_holds_for_every_pretraining_model(config):
    """Every algorithm and backbone type of the pretraining configs (narrow
    stand-ins with the same layer names): nothing but norm layers and biases
    matches the name keys by accident."""
    model = Config.fromfile(config).model
    shrink_model(model)
    assert_norms_and_biases_excluded(MODELS.build(model))


@pytest.mark.parametrize('algorithm', sorted(MAIN))
def test_main_configs_hold_the_paper_recipe(algorithm):
    cfg = Config.fromfile(MAIN[algorithm])
    model = cfg.model
    assert cfg.default_scope == 'mmaction'
    assert cfg.custom_imports == dict(imports=['mmbodvcl'],
                                      allow_failed_imports=False)
    assert model.decoupler.type == 'KoopmanDecoupler'
    assert (model.decoupler.xi, model.decoupler.nu) == (0.1, 1e-4)
    assert model.decoupler.get('contrast', 'split') == 'split'
    assert model.with_lower_loss is False and model.strict_lower is False
    assert model.backbone.type == 'ResNet3dSlowOnly'
    assert model.backbone.depth == 50
    # time kept to res5: no temporal stride in the stem
    assert model.backbone.conv1_stride_t == 1
    assert model.backbone.pool1_stride_t == 1
    assert model.neck.type == 'PerFrameProjectionNeck'
    assert model.neck.out_channels == 128
    if algorithm == 'vbyol':
        assert (model.neck.num_layers, model.neck.hid_channels) == (2, 4096)
        assert model.head.hidden_channels == 4096
    else:
        assert (model.neck.num_layers, model.neck.hid_channels) == (3, 2048)
        assert model.head.loss.temperature == 0.1
    sync_bn = model.backbone.norm_cfg.type == 'SyncBN'
    assert sync_bn == (algorithm != 'vmoco')
    assert (model.neck.norm_cfg.type == 'SyncBN') == sync_bn

    sampler = cfg.train_dataloader.dataset.pipeline[1]
    assert sampler.type == 'MultiViewSampleFrames'
    assert (sampler.clip_len, sampler.frame_interval,
            sampler.num_views) == (8, 8, 2)
    assert cfg.optim_wrapper.type == 'BiLevelOptimWrapper'
    assert cfg.optim_wrapper.optimizer.type == 'LARS'
    assert cfg.optim_wrapper.hypergrad.type == 'itd_fd'
    assert cfg.optim_wrapper.hypergrad.inner_steps == 1
    assert cfg.model_wrapper_cfg.type == 'ReducerFreeDataParallel'
    assert cfg.train_cfg.max_epochs == 200
    assert cfg.auto_scale_lr == dict(
        enable=False,
        base_batch_size=16 * cfg.train_dataloader.batch_size)


@pytest.mark.parametrize('backbone_type', sorted(DOWNSTREAM_MODELS))
def test_pretrained_backbone_matches_downstream_backbone(backbone_type):
    """Pretraining and downstream build the same backbone parameters, so a
    pretrained checkpoint loads downstream without missing keys."""
    pretrain = next(
        (path for path in PRETRAIN_CONFIGS
         if Config.fromfile(path).model.backbone.type == backbone_type),
        None)
    assert pretrain is not None, f'no pretraining config uses {backbone_type}'
    downstream = osp.join(REPO, 'configs/downstream/_base_/models',
                          DOWNSTREAM_MODELS[backbone_type])
    if not osp.isfile(downstream):
        pytest.fail(f'downstream model {downstream} is missing')
    ours = MODELS.build(Config.fromfile(pretrain).model.backbone)
    theirs = MODELS.build(Config.fromfile(downstream).model.backbone)
    ours_shapes = {k: tuple(v.shape) for k, v in ours.state_dict().items()}
    theirs_shapes = {
        k: tuple(v.shape)
        for k, v in theirs.state_dict().items()
    }
    assert ours_shapes == theirs_shapes
