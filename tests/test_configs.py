"""Every pretraining config (configs/bodvcl, configs/baselines) builds its
model and dataset and runs one training iteration through MMEngine's Runner
on generated videos, and the configs hold the paper's recipe.

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
import uuid
from typing import Dict, List

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from mmbodvcl.testing import make_video_dataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
PRETRAIN_CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs/bodvcl/**/*.py'), recursive=True) +
    glob.glob(osp.join(REPO, 'configs/baselines/**/*.py'), recursive=True))
MAIN = {
    alg: osp.join(REPO, f'configs/bodvcl/{alg}_slowr50_k400.py')
    for alg in ('vsimclr', 'vmoco', 'vbyol', 'vswav')
}
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


@pytest.fixture(autouse=True)
def mmaction_scope():
    init_default_scope('mmaction')


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
    backbone_type = model.backbone.type
    if backbone_type not in NARROW_BACKBONES:
        pytest.fail(f'no narrow stand-in for backbone {backbone_type!r}: add '
                    'it to NARROW_BACKBONES in tests/test_configs.py')
    overrides, channels = NARROW_BACKBONES[backbone_type]
    model.backbone.update(overrides)
    return channels


def shrink(cfg: Config, ann_file: str, work_dir: str) -> Config:
    """The test-only overrides, all in one place."""
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    channels = narrow_backbone(model)
    model.neck.update(in_channels=channels, hid_channels=32)
    if model.head.type == 'MoCoQueueHead':
        model.head.queue_len = 16
    if model.head.type == 'BYOLPredictionHead':
        model.head.hidden_channels = 32
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
    """Records how far the backbone's parameters moved in each iteration
    and whether they stayed finite."""

    def __init__(self) -> None:
        self.changes: List[float] = []
        self.finite = True

    def _backbone(self, runner: Runner) -> torch.nn.Module:
        return runner.model.backbone

    def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
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


@pytest.mark.parametrize('config', PRETRAIN_CONFIGS, ids=config_id)
def test_one_training_iteration(config, video_ann, tmp_path, request):
    cfg = shrink(Config.fromfile(config), video_ann, str(tmp_path))
    if (cfg.optim_wrapper.get('hypergrad') or {}).get('type') == 'aid_cg':
        # Measured: on the narrow test encoder at the first iteration,
        # p^T (I + gamma H) p of L_pred is about -1e10 even at the configs'
        # gamma = 1e-4 (H is strongly indefinite at init), so conjugate gradient
        # has no solution and BiLevelOptimWrapper refuses with this error
        # (the other methods step fine). It depends on the initialisation:
        # unseeded, some runs step; with seed 0 it fails every time, so the
        # expected failure is strict and shows if that changes.
        request.applymarker(
            pytest.mark.xfail(
                raises=FloatingPointError,
                reason='AID-CG needs I + gamma H positive definite',
                strict=True))
    runner = build_runner(cfg)
    recorder = ParameterChange()
    runner.register_hook(recorder)
    runner.train()

    assert runner.iter == 1
    assert type(runner.model).__name__ == cfg.model.type
    assert type(runner.optim_wrapper).__name__ == cfg.optim_wrapper.type
    hub = runner.message_hub
    loss = hub.get_scalar('train/loss').current()
    assert math.isfinite(loss), f'{config_id(config)}: loss {loss}'
    parts = ('static', 'dynamic') if cfg.model.decouple else ('unified', )
    for part in parts:
        assert math.isfinite(hub.get_scalar(f'train/loss_{part}').current())
    if cfg.model.decouple:
        static = hub.get_scalar('train/num_static_modes').current()
        dynamic = hub.get_scalar('train/num_dynamic_modes').current()
        assert static >= 0 and dynamic >= 0
    if cfg.optim_wrapper.type == 'BiLevelOptimWrapper' or \
            cfg.model.with_pred_loss:
        assert math.isfinite(hub.get_scalar('train/loss_pred').current())
    assert recorder.finite, 'non-finite backbone parameters after the step'
    assert recorder.changes and recorder.changes[0] > 0, \
        'the backbone did not move in the training iteration'

    checkpoint = torch.load(
        osp.join(str(tmp_path), 'epoch_1.pth'), map_location='cpu')
    assert any(key.startswith('backbone.') for key in checkpoint['state_dict'])


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


@pytest.mark.parametrize(
    'baseline',
    sorted(glob.glob(osp.join(REPO, 'configs/baselines/*.py'))),
    ids=config_id)
def test_baseline_differs_only_in_what_bodvcl_changes(baseline):
    bodvcl = osp.join(REPO, 'configs/bodvcl', osp.basename(baseline))
    assert osp.isfile(bodvcl), f'no BOD-VCL config for {baseline}'
    plain = flatten(Config.fromfile(baseline).to_dict())
    ours = flatten(Config.fromfile(bodvcl).to_dict())
    differing = {
        key
        for key in set(plain) | set(ours) if plain.get(key) != ours.get(key)
    }
    # The step (bi-level vs single-level) decides the DDP wrapper too.
    allowed = {'model.decouple', 'optim_wrapper.type', 'model_wrapper_cfg.type'}
    allowed |= {
        key
        for key in ours if key.startswith('optim_wrapper.hypergrad.')
    }
    assert differing <= allowed, sorted(differing - allowed)
    assert plain['model.decouple'] is False and ours['model.decouple'] is True
    assert plain['optim_wrapper.type'] == 'OptimWrapper'
    assert ours['optim_wrapper.type'] == 'BiLevelOptimWrapper'
    assert plain['model_wrapper_cfg.type'] == 'VCLDistributedDataParallel'
    assert ours['model_wrapper_cfg.type'] == 'BiLevelDistributedDataParallel'


@pytest.mark.parametrize('algorithm', sorted(MAIN))
def test_main_configs_hold_the_paper_recipe(algorithm):
    cfg = Config.fromfile(MAIN[algorithm])
    model = cfg.model
    assert cfg.default_scope == 'mmaction'
    assert cfg.custom_imports == dict(imports=['mmbodvcl'],
                                      allow_failed_imports=False)
    assert model.decouple is True and model.with_pred_loss is False
    assert model.backbone.type == 'ResNet3dSlowOnly'
    assert model.backbone.depth == 50
    # time kept to res5: no temporal stride in the stem
    assert model.backbone.conv1_stride_t == 1
    assert model.backbone.pool1_stride_t == 1
    assert model.neck.type == 'KoopmanNeck'
    assert (model.neck.out_channels, model.neck.xi, model.neck.nu) == (
        128, 0.1, 1e-4)
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
    assert cfg.optim_wrapper.hypergrad.type == 'aid_fd'
    assert cfg.optim_wrapper.hypergrad.inner_steps == 1
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
