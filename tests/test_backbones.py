"""Backbones: S3D-G and the per-frame ViT adapter keep time at the last
stage; the stock MMAction2 backbones our configs use keep it too."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmbodvcl  # noqa: F401  (registers S3DG, PerFrameViT)
from mmaction.registry import MODELS
from mmbodvcl.models.backbones.s3dg import SelfGating

# Layers such as ``Conv2plus1d`` are found through the default scope, as in
# a Runner built from an MMAction2 config.
init_default_scope('mmaction')

MODEL_BASES = osp.join(
    osp.dirname(__file__), '..', 'configs', 'downstream', '_base_', 'models')


def tiny_vit_cfg(**overrides) -> dict:
    cfg = dict(img_size=32, patch_size=16, embed_dims=32, depth=2,
               num_heads=2, num_frames=8)
    cfg.update(overrides)
    return cfg


@pytest.mark.parametrize('conv1_stride_t, pool_strides_t, t_out', [
    (2, (1, 1), 4),  # default: time divided by 2 only
    (1, (1, 1), 8),  # every frame kept
    (2, (2, 2), 1),  # the original S3D-G (time divided by 8)
])
def test_s3dg_output_shape(conv1_stride_t, pool_strides_t, t_out):
    backbone = MODELS.build(
        dict(type='S3DG', conv1_stride_t=conv1_stride_t,
             pool_strides_t=pool_strides_t))
    backbone.init_weights()
    backbone.eval()  # one value per channel at the last stage
    out = backbone(torch.randn(1, 3, 8, 32, 32))
    assert out.shape == (1, 1024, t_out, 1, 1)
    assert torch.isfinite(out).all()


def test_s3dg_gating_and_stages():
    gated = MODELS.build(dict(type='S3DG', out_indices=(0, 1, 2)))
    plain = MODELS.build(dict(type='S3DG', gating=False))
    # S3D-G gates every branch of its nine Mixed blocks; S3D has no gate.
    assert sum(isinstance(m, SelfGating) for m in gated.modules()) == 36
    assert not any(isinstance(m, SelfGating) for m in plain.modules())
    gated.eval()  # one value per channel at the last stage
    feats = gated(torch.randn(1, 3, 2, 32, 32))
    assert [f.shape[1] for f in feats] == [480, 832, 1024]
    gated_params = sum(p.numel() for p in gated.parameters())
    plain_params = sum(p.numel() for p in plain.parameters())
    assert gated_params > plain_params


def test_s3dg_gradients_and_freezing():
    backbone = MODELS.build(dict(type='S3DG'))
    backbone.train()
    backbone(torch.randn(2, 3, 2, 32, 32)).sum().backward()
    assert all(p.grad is not None for p in backbone.parameters())

    frozen = MODELS.build(dict(type='S3DG', frozen_stages=3))
    frozen.init_weights()
    frozen.train()
    assert not any(p.requires_grad for p in frozen.parameters())
    assert not any(m.training for m in frozen.modules()
                   if isinstance(m, torch.nn.BatchNorm3d))

    stem_only = MODELS.build(dict(type='S3DG', frozen_stages=0))
    stem_only.init_weights()
    assert not any(p.requires_grad for p in stem_only.stem.parameters())
    assert all(p.requires_grad for p in stem_only.stages.parameters())


def test_s3dg_bad_arguments():
    with pytest.raises(ValueError, match='pool_strides_t'):
        MODELS.build(dict(type='S3DG', pool_strides_t=(1, )))
    with pytest.raises(ValueError, match='out_indices'):
        MODELS.build(dict(type='S3DG', out_indices=(3, )))
    with pytest.raises(ValueError, match=r'\(N, C, T, H, W\)'):
        MODELS.build(dict(type='S3DG'))(torch.randn(3, 8, 32, 32))


@pytest.mark.parametrize('tubelet_size, t_out', [(2, 4), (1, 8)])
def test_per_frame_vit_shape(tubelet_size, t_out):
    backbone = MODELS.build(
        dict(type='PerFrameViT', **tiny_vit_cfg(tubelet_size=tubelet_size)))
    backbone.init_weights()
    out = backbone(torch.randn(2, 3, 8, 32, 32))
    assert out.shape == (2, 32, t_out)
    assert torch.isfinite(out).all()


def test_per_frame_vit_matches_stock_vit():
    """Same parameters as the stock ViT (its checkpoints load both ways), and
    the per-position features keep the stock features' temporal content:
    changing one frame changes only its own temporal position once the
    tokens no longer attend to each other (depth 0)."""
    stock = MODELS.build(dict(type='VisionTransformer', **tiny_vit_cfg()))
    per_frame = MODELS.build(dict(type='PerFrameViT', **tiny_vit_cfg()))
    per_frame.load_state_dict(stock.state_dict(), strict=True)

    no_attention = MODELS.build(
        dict(type='PerFrameViT', **tiny_vit_cfg(depth=0, tubelet_size=1)))
    no_attention.eval()
    clip = torch.randn(1, 3, 8, 32, 32)
    changed = clip.clone()
    changed[:, :, 5] = torch.randn(1, 3, 32, 32)
    delta = (no_attention(changed) - no_attention(clip)).abs().amax(dim=1)
    assert delta[0, 5] > 1e-3
    assert torch.allclose(delta[0, :5], torch.zeros(5), atol=1e-6)
    assert torch.allclose(delta[0, 6:], torch.zeros(2), atol=1e-6)


def test_per_frame_vit_bad_arguments():
    with pytest.raises(ValueError, match='return_feat_map'):
        MODELS.build(
            dict(type='PerFrameViT', return_feat_map=True, **tiny_vit_cfg()))
    backbone = MODELS.build(dict(type='PerFrameViT', **tiny_vit_cfg()))
    with pytest.raises(ValueError, match=r'\(N, C, T, H, W\)'):
        backbone(torch.randn(3, 8, 32, 32))


@pytest.mark.parametrize('base, channels, t_out', [
    ('r3d_18.py', 512, 8),
    ('r2plus1d_18.py', 512, 8),
    ('slowonly_r50.py', 2048, 8),
    ('s3dg.py', 1024, 4),  # only the first convolution strides in time
])
def test_config_backbones_keep_time(base, channels, t_out):
    """The backbones of our downstream configs keep time at the last stage,
    as BOD-VCL pretraining needs."""
    cfg = Config.fromfile(osp.join(MODEL_BASES, base))
    backbone = MODELS.build(cfg.model.backbone)
    backbone.init_weights()
    out = backbone(torch.randn(1, 3, 8, 32, 32))
    assert out.shape[:3] == (1, channels, t_out)


def test_stock_resnet3d_pool2_would_halve_time():
    """Why r3d_18.py sets ``with_pool2=False``: the stock default halves T."""
    cfg = Config.fromfile(osp.join(MODEL_BASES, 'r3d_18.py'))
    cfg.model.backbone.with_pool2 = True
    backbone = MODELS.build(cfg.model.backbone)
    assert backbone(torch.randn(1, 3, 8, 32, 32)).shape[2] == 4
