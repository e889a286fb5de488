"""Every Static and Dynamic Concepts config (configs/concepts) builds its
model and dataset and runs one training iteration through MMEngine's Runner
on generated videos; the main configs hold the paper's recipe; the
pretrained backbone loads into the downstream model.

The pattern and helpers of tests/test_configs.py; the test-only overrides
are all in :func:`shrink`: a narrow backbone, 32 px crops, 2 videos per
batch, narrow decoders, no local-contrast warm-up (so the one iteration
runs every loss), one epoch of one iteration.
"""
import copy
import glob
import math
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from helpers import make_video_dataset
# helpers of other test modules (pytest puts tests/ on sys.path)
from test_configs import (DOWNSTREAM_MODELS, NUM_FRAMES, REPO, ParameterChange,
                          build_runner, config_id, narrow_backbone, shrink_run)

CONFIGS = sorted(
    glob.glob(osp.join(REPO, 'configs/concepts/**/*.py'), recursive=True))
MAIN = {
    name: osp.join(REPO, f'configs/concepts/{name}.py')
    for name in ('concepts_r2plus1d18_16x4_112px_ucf101',
                 'concepts_r2plus1d18_16x4_112px_k400',
                 'concepts_s3dg_16x4_128px_k400',
                 'concepts_s3dg_32x2_128px_ucf101')
}


pytestmark = pytest.mark.usefixtures('mmaction_scope')


@pytest.fixture(scope='module')
def video_ann(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('concepts_tiny'))
    return make_video_dataset(root, num_videos=2, num_frames=NUM_FRAMES,
                              size=(48, 64))


def shrink(cfg: Config, ann_file: str, work_dir: str) -> Config:
    """The test-only overrides, all in one place."""
    cfg = copy.deepcopy(cfg)
    model = cfg.model
    channels = narrow_backbone(model)
    model.head.update(in_channels=channels, recon_hid_channels=32)
    if model.local_contrast:
        model.local_contrast.update(in_channels=channels,
                                    embed_dim=channels, warmup_epochs=0)
    return shrink_run(cfg, ann_file, work_dir)


@pytest.mark.parametrize('config', CONFIGS, ids=config_id)
def test_one_training_iteration(config, video_ann, tmp_path):
    cfg = shrink(Config.fromfile(config), video_ann, str(tmp_path))
    runner = build_runner(cfg)
    recorder = ParameterChange()
    runner.register_hook(recorder)
    runner.train()

    assert runner.iter == 1
    assert type(runner.model).__name__ == 'StaticDynamicConcepts'
    expected = ['loss', 'loss_align_static', 'loss_align_dynamic']
    if cfg.model.head.sparsity_loss:
        expected.append('loss_sparsity')
    if cfg.model.head.recon_loss:
        expected.append('loss_recon')
    if cfg.model.local_contrast:
        expected += ['loss_local_static', 'loss_local_dynamic']
    hub = runner.message_hub
    logged = {key for key in hub.log_scalars if key.startswith('train/')}
    assert {f'train/{key}' for key in expected} <= logged
    for key in expected:
        value = hub.get_scalar(f'train/{key}').current()
        assert math.isfinite(value), f'{config_id(config)}: {key} {value}'
    if not cfg.model.local_contrast:
        assert 'train/loss_local_static' not in logged
    assert recorder.finite, 'non-finite backbone parameters after the step'
    assert recorder.changes and recorder.changes[0] > 0, \
        'the backbone did not move in the training iteration'
    checkpoint = torch.load(
        osp.join(str(tmp_path), 'epoch_1.pth'), map_location='cpu')
    assert any(key.startswith('backbone.') for key in checkpoint['state_dict'])


@pytest.mark.parametrize('name', sorted(MAIN))
def test_main_configs_hold_the_paper_recipe(name):
    cfg = Config.fromfile(MAIN[name])
    model = cfg.model
    assert cfg.default_scope == 'mmaction'
    assert cfg.custom_imports == dict(imports=['mmbodvcl'],
                                      allow_failed_imports=False)
    assert model.decoupler == dict(type='DerivedInputDecoupler',
                                   static_frame='random')
    head, local = model.head, model.local_contrast
    assert (head.num_static, head.num_dynamic) == (50, 50)
    assert head.projection is None and head.entropy_loss is None
    assert head.queue_len == 0
    assert (local.top_ratio, local.warmup_epochs) == (0.1, 5)
    assert local.attention_norm == 'locations'
    # One backbone for the three inputs, time kept at its last stage.
    assert model.backbone.type in ('ResNet2Plus1d', 'S3DG')
    sampler = cfg.train_dataloader.dataset.pipeline[1]
    assert sampler.type == 'MultiViewSampleFrames'
    assert sampler.num_views == 1
    frames = 32 if name.endswith('32x2_128px_ucf101') else 16
    assert sampler.clip_len == frames
    size = 112 if model.backbone.type == 'ResNet2Plus1d' else 128
    augment = cfg.train_dataloader.dataset.pipeline[3]
    assert dict(type='Resize', scale=(size, size),
                keep_ratio=False) in augment.transforms
    epochs = 200 if name.endswith('ucf101') else 100
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.model_wrapper_cfg == dict(
        type='MMDistributedDataParallel', find_unused_parameters=True)


@pytest.mark.parametrize('name', sorted(MAIN))
def test_pretrained_backbone_matches_downstream_backbone(name):
    """The checkpoint's backbone loads into the downstream model of its
    type without missing keys."""
    backbone = Config.fromfile(MAIN[name]).model.backbone
    downstream = osp.join(REPO, 'configs/downstream/_base_/models',
                          DOWNSTREAM_MODELS[backbone.type])
    ours = MODELS.build(backbone).state_dict()
    theirs = MODELS.build(Config.fromfile(downstream).model.backbone)
    assert {k: v.shape for k, v in ours.items()} == {
        k: v.shape for k, v in theirs.state_dict().items()}
