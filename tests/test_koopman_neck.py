"""KoopmanNeck: registry build, per-frame projection, L_pred and split on
features of a real MMAction2 backbone fed with decoded generated videos."""
import decord
import numpy as np
import pytest
import torch

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from mmbodvcl.models.necks import KoopmanNeck
from mmbodvcl.testing import make_video


def build_neck(**kwargs) -> KoopmanNeck:
    cfg = dict(type='KoopmanNeck', in_channels=16, hid_channels=32,
               out_channels=8)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def tiny_backbone() -> torch.nn.Module:
    """Slow-only ResNet3d-18 with 4 base channels: (N, 32, T, 1, 1) at 32 px,
    time kept."""
    backbone = MODELS.build(
        dict(type='ResNet3dSlowOnly', depth=18, pretrained=None,
             lateral=False, base_channels=4, norm_eval=False))
    backbone.init_weights()
    return backbone


def decoded_clips(tmp_path, num_videos: int = 2, frames: int = 16,
                  static: bool = False) -> torch.Tensor:
    """``(num_videos, 3, frames, 32, 32)`` decoded by decord from videos
    written by :func:`make_video`; ``static`` repeats the first frame."""
    clips = []
    for seed in range(num_videos):
        path = make_video(str(tmp_path / f'video{seed}.mp4'),
                          num_frames=frames, size=(32, 32), seed=seed)
        reader = decord.VideoReader(path)
        indices = [0] * frames if static else list(range(frames))
        clip = reader.get_batch(indices).asnumpy()  # (T, H, W, 3) uint8
        clips.append(torch.from_numpy(clip).permute(3, 0, 1, 2))
    return torch.stack(clips).float().div(255).sub(0.5)


def test_registered_in_mmaction_models():
    assert MODELS.get('KoopmanNeck') is KoopmanNeck
    assert isinstance(build_neck(), KoopmanNeck)


def test_projection_is_per_frame_and_pools_space():
    torch.manual_seed(0)
    neck = build_neck().eval()
    feats = torch.randn(3, 16, 6, 2, 3)
    z = neck(feats)
    assert z.shape == (3, 8, 6)
    torch.testing.assert_close(neck(feats.mean(dim=(3, 4))), z)
    order = torch.randperm(6)
    torch.testing.assert_close(neck(feats[:, :, order]), z[..., order])
    torch.testing.assert_close(neck((feats, )), z)


def test_mlp_follows_the_config():
    byol = build_neck(num_layers=2, hid_channels=64, with_bias=True,
                      with_last_bn=False)
    linears = [m for m in byol.projector if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 64),
                                                                  (64, 8)]
    assert linears[0].bias is not None and linears[1].bias is None
    assert isinstance(byol.projector[-1], torch.nn.Linear)
    default = build_neck()
    assert sum(isinstance(m, torch.nn.Linear)
               for m in default.projector) == 3
    assert isinstance(default.projector[-1], torch.nn.BatchNorm1d)


def test_backbone_to_loss_and_split_on_decoded_video(tmp_path):
    torch.manual_seed(0)
    clips = decoded_clips(tmp_path)
    backbone = tiny_backbone()
    neck = build_neck(in_channels=32)
    views = [neck(backbone(clip)) for clip in (clips[:, :, :8],
                                                clips[:, :, 8:])]
    assert views[0].shape == (2, 8, 8)
    losses = neck.prediction_loss(views)
    assert set(losses) == {'loss_pred', 'pred_mse', 'pred_orth'}
    assert losses['loss_pred'] > 0
    splits = neck.split_views(views)
    for view, split in zip(views, splits):
        assert split.static.shape == split.dynamic.shape == (2, 8)
        assert split.eigvals.shape == split.static_mask.shape == (2, 7)
        assert split.eigvals.is_complex()
        assert split.static_mask.dtype == torch.bool
        assert split.num_static.shape == (2, )
        torch.testing.assert_close(split.unified, view.mean(-1))
        torch.testing.assert_close(split.static + split.dynamic,
                                   split.unified)
    single = neck.split(views[1])
    torch.testing.assert_close(single.static, splits[1].static)
    total = losses['loss_pred'] + sum(
        s.static.square().mean() + s.dynamic.square().mean()
        for s in splits)
    total.backward()
    grads = [p.grad for p in backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_constant_clips_give_finite_gradients(tmp_path):
    torch.manual_seed(0)
    clips = decoded_clips(tmp_path, static=True, frames=8)
    backbone = tiny_backbone()
    neck = build_neck(in_channels=32)
    views = [neck(backbone(clips)), neck(backbone(clips.flip(0)))]
    split = neck.split(views[0])
    assert split.num_static.tolist() == [1, 1]
    total = neck.prediction_loss(views)['loss_pred'] + (
        split.static.square().sum() + split.dynamic.square().sum())
    total.backward()
    assert all(torch.isfinite(p.grad).all() for p in backbone.parameters()
               if p.grad is not None)


def test_prediction_loss_descends_along_its_gradient():
    """L_pred is differentiable through the projection: its gradient is
    finite and nonzero, and a small step against it lowers L_pred (a
    first-order property, not a training trend)."""
    torch.manual_seed(0)
    neck = build_neck()
    angle = torch.linspace(0, 3, 12)
    base = torch.randn(4, 16, 1)
    sequence = base * torch.sin(angle * (1 + base.abs()))  # (4, 16, 12)
    views = [sequence[..., :8], sequence[..., 4:]]
    params = [p for p in neck.parameters() if p.requires_grad]

    def loss_at(tensors):
        subs = dict(zip([n for n, p in neck.named_parameters()
                         if p.requires_grad], tensors))
        z = [torch.func.functional_call(neck, subs, (v, )) for v in views]
        return neck.prediction_loss(z)['loss_pred']

    loss = loss_at(params)
    grads = torch.autograd.grad(loss, params)
    norm = torch.sqrt(sum(g.square().sum() for g in grads))
    assert torch.isfinite(norm) and norm > 0
    step = 1e-3 / norm
    with torch.no_grad():
        lower = loss_at([p - step * g for p, g in zip(params, grads)])
    assert lower < loss


def test_outputs_float32_under_autocast():
    torch.manual_seed(0)
    neck = build_neck()
    feats = torch.randn(2, 16, 6)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        z = neck(feats)
        split = neck.split(z)
        loss = neck.prediction_loss([z, z.flip(-1)])['loss_pred']
    assert split.static.dtype == torch.float32
    assert loss.dtype == torch.float32
    assert torch.isfinite(split.static).all() and torch.isfinite(loss)


@pytest.mark.parametrize('kwargs,error,match', [
    (dict(xi=0.0), ValueError, 'xi=0.0'),
    (dict(xi=-0.1), ValueError, 'xi=-0.1'),
    (dict(estimator='least_squares'), ValueError,
     "estimator='least_squares'"),
    (dict(split='qr'), ValueError, "split='qr'"),
    (dict(spectral_grad='none'), ValueError, "spectral_grad='none'"),
    (dict(out_channels=0), ValueError, 'out_channels=0'),
    (dict(num_layers=0), ValueError, 'num_layers=0'),
    (dict(nu=-1.0), ValueError, 'nu=-1.0'),
])
def test_bad_config_is_refused_at_build(kwargs, error, match):
    with pytest.raises(error, match=match):
        build_neck(**kwargs)


def test_bad_input_is_refused():
    neck = build_neck()
    with pytest.raises(ValueError, match='T=1'):
        neck(torch.randn(2, 16, 1, 2, 2))
    with pytest.raises(ValueError, match='C=5'):
        neck(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r'\(2, 16, 4, 2\)'):
        neck(torch.randn(2, 16, 4, 2))
    with pytest.raises(ValueError, match='sequence of 2'):
        neck((torch.randn(2, 16, 4), torch.randn(2, 16, 4)))
    with pytest.raises(ValueError, match='M=4'):
        neck.split(torch.randn(2, 4, 6))
    with pytest.raises(ValueError, match='T=1'):
        neck.split(torch.randn(2, 8, 1))
    with pytest.raises(ValueError, match='at least 2 views'):
        neck.prediction_loss([torch.randn(2, 8, 6)])
    literal = build_neck(estimator='literal')
    assert torch.isfinite(
        literal.prediction_loss([torch.randn(2, 8, 6)])['loss_pred'])
