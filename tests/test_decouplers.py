"""The projection neck and the decouplers (Koopman split, derived inputs,
none) on features of a real MMAction2 backbone fed with decoded generated
videos; the decoupling interface as an extension point; configs and
checkpoints written before the interface existed."""
import copy
import os.path as osp
import uuid
from typing import Dict, List

import decord
import pytest
import torch
from mmengine.runner import Runner
from torch import Tensor

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from mmbodvcl.functional.derived_inputs import (frame_difference_clip,
                                                static_frame_clip)
from mmbodvcl.models.decouplers import (BaseDecoupler, Decoupled,
                                        DerivedInputDecoupler, Encoder,
                                        KoopmanDecoupler, UnifiedEmbedding,
                                        encode_views)
from mmbodvcl.models.necks import PerFrameProjectionNeck
from mmbodvcl.models.utils import NamedMLP
from helpers import make_video, make_video_dataset, multiview_pretrain_pipeline

LEGACY_CHECKPOINT = osp.join(
    osp.dirname(__file__), 'data', 'legacy_vbyol_bodvcl_v0.1.pth')


pytestmark = pytest.mark.usefixtures('mmaction_scope')


def build_neck(**kwargs) -> PerFrameProjectionNeck:
    cfg = dict(type='PerFrameProjectionNeck', in_channels=16,
               hid_channels=32, out_channels=8)
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


def decoded_clips(tmp_path, num_videos: int = 2,
                  frames: int = 16) -> torch.Tensor:
    """``(num_videos, 3, frames, 32, 32)`` decoded by decord from videos
    written by :func:`make_video`."""
    clips = []
    for seed in range(num_videos):
        path = make_video(str(tmp_path / f'video{seed}.mp4'),
                          num_frames=frames, size=(32, 32), seed=seed)
        clip = decord.VideoReader(path).get_batch(list(range(frames)))
        clips.append(torch.from_numpy(clip.asnumpy()).permute(3, 0, 1, 2))
    return torch.stack(clips).float().div(255).sub(0.5)


# ------------------------------------------------------------------- neck
def test_neck_is_registered_under_both_names():
    assert MODELS.get('PerFrameProjectionNeck') is PerFrameProjectionNeck
    assert MODELS.get('KoopmanNeck') is PerFrameProjectionNeck


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


@pytest.mark.parametrize('num_layers', [1, 2, 3, 5])
def test_mlp_layers_have_names_for_any_depth(num_layers):
    neck = build_neck(num_layers=num_layers, with_bias=True)
    names = list(neck.projector._modules)
    hidden = num_layers - 1
    assert names == [n for i in range(hidden)
                     for n in (f'fc{i}', f'bn{i}', f'relu{i}')] + [
                         f'fc{hidden}', f'bn{hidden}']
    norms = [n for n, m in neck.named_modules()
             if isinstance(m, torch.nn.BatchNorm1d)]
    assert norms == [f'projector.bn{i}' for i in range(num_layers)]
    byol = build_neck(num_layers=2, hid_channels=64, with_bias=True,
                      with_last_bn=False)
    assert list(byol.projector._modules) == ['fc0', 'bn0', 'relu0', 'fc1']
    assert byol.projector.fc0.bias is not None
    assert byol.projector.fc1.bias is None


def test_named_mlp_loads_numbered_sequential_keys():
    torch.manual_seed(0)
    old = torch.nn.Sequential(
        torch.nn.Linear(4, 6), torch.nn.BatchNorm1d(6), torch.nn.ReLU(),
        torch.nn.Linear(6, 3))
    old(torch.randn(8, 4))  # running statistics away from their init
    new = NamedMLP((4, 6, 3), norm_cfg=dict(type='BN1d'), hidden_bias=True,
                   last_bias=True)
    new.load_state_dict(old.state_dict(), strict=True)
    old.eval(), new.eval()
    inputs = torch.randn(5, 4)
    assert torch.equal(old(inputs), new(inputs))
    with pytest.raises(ValueError, match=r'widths=\[4\]'):
        NamedMLP((4, ), norm_cfg=dict(type='BN1d'))


def test_neck_refuses_bad_input():
    neck = build_neck()
    with pytest.raises(ValueError, match='C=5'):
        neck(torch.randn(2, 5, 4))
    with pytest.raises(ValueError, match=r'\(2, 16, 4, 2\)'):
        neck(torch.randn(2, 16, 4, 2))
    with pytest.raises(ValueError, match='sequence of 2'):
        neck((torch.randn(2, 16, 4), torch.randn(2, 16, 4)))
    with pytest.raises(ValueError, match='num_layers=0'):
        build_neck(num_layers=0)


# ----------------------------------------------------------------- Koopman
def test_koopman_decoupler_on_decoded_video(tmp_path):
    torch.manual_seed(0)
    clips = decoded_clips(tmp_path)
    backbone, neck = tiny_backbone(), build_neck(in_channels=32)
    decoupler = MODELS.build(dict(type='KoopmanDecoupler', xi=0.2))

    def encoder(x):
        return neck(backbone(x))

    views = [clips[:, :, :8], clips[:, :, 8:]]
    out = decoupler(encoder, views, with_lower_loss=True)
    assert set(out.parts) == set(decoupler.parts) == {'static', 'dynamic'}
    assert set(out.statistics) == set(decoupler.statistics)
    assert set(out.lower_losses) == {'loss_pred', 'pred_mse', 'pred_orth'}
    z = encode_views(encoder, views)  # (V, N, M, T)
    assert z.shape == (2, 2, 8, 8)
    torch.testing.assert_close(out.parts['static'] + out.parts['dynamic'],
                               z.mean(-1))  # Z = Z_A + Z_M
    # The logged count is the number of eigenvalues of each clip's
    # operator K = Y X^+ within xi of 1, computed here independently (eig of
    # the full M x M matrix in float64), averaged over the 4 clips.
    clips = z.flatten(0, 1).detach().double()
    operators = clips[..., 1:] @ torch.linalg.pinv(clips[..., :-1])
    near_one = (torch.linalg.eigvals(operators) - 1).abs() < 0.2
    assert out.statistics['num_static_modes'] == near_one.sum(-1).double(
    ).mean().float()
    split = decoupler.split(z[1], xi=0.5)
    assert split.static.shape == (2, 8)
    assert (split.num_static >= decoupler.split(z[1]).num_static).all()
    lower = decoupler.lower_loss(encoder, views)
    torch.testing.assert_close(lower['loss_pred'],
                               out.lower_losses['loss_pred'])
    total = lower['loss_pred'] + sum(p.square().mean()
                                     for p in out.parts.values())
    total.backward()
    grads = [p.grad for p in backbone.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_prediction_loss_descends_along_its_gradient():
    """L_pred is differentiable through the projection: its gradient is
    finite and nonzero, and a small step against it lowers L_pred (a
    first-order property, not a training trend)."""
    torch.manual_seed(0)
    neck, decoupler = build_neck(), KoopmanDecoupler()
    angle = torch.linspace(0, 3, 12)
    base = torch.randn(4, 16, 1)
    sequence = base * torch.sin(angle * (1 + base.abs()))  # (4, 16, 12)
    views = [sequence[..., :8], sequence[..., 4:]]
    names, params = zip(*[(n, p) for n, p in neck.named_parameters()])

    def loss_at(tensors):
        subs = dict(zip(names, tensors))
        return decoupler.prediction_loss([
            torch.func.functional_call(neck, subs, (v, )) for v in views
        ])['loss_pred']

    loss = loss_at(params)
    grads = torch.autograd.grad(loss, params)
    norm = torch.sqrt(sum(g.square().sum() for g in grads))
    assert torch.isfinite(norm) and norm > 0
    step = 1e-3 / norm
    with torch.no_grad():
        lower = loss_at([p - step * g for p, g in zip(params, grads)])
    assert lower < loss


def test_koopman_outputs_float32_under_autocast():
    torch.manual_seed(0)
    neck, decoupler = build_neck(), KoopmanDecoupler()
    feats = [torch.randn(2, 16, 6), torch.randn(2, 16, 6)]
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        out = decoupler(neck, feats, with_lower_loss=True)
    for value in list(out.parts.values()) + [out.lower_losses['loss_pred']]:
        assert value.dtype == torch.float32 and torch.isfinite(value).all()


def test_koopman_unified_contrast_is_the_plus_lpred_ablation():
    torch.manual_seed(0)
    decoupler = KoopmanDecoupler(contrast='unified')
    views = [torch.randn(3, 8, 5), torch.randn(3, 8, 5)]
    out = decoupler(torch.nn.Identity(), views, with_lower_loss=True)
    assert decoupler.parts == ('unified', ) and decoupler.statistics == ()
    torch.testing.assert_close(out.parts['unified'],
                               torch.stack(views).mean(-1))
    assert 'loss_pred' in out.lower_losses and not out.statistics


def test_koopman_split_options_reach_the_split():
    """``min_static`` adds the modes nearest 1 (within |lambda - 1| < 1) to
    the static part; ``dynamic_pool`` changes how Z_M pools time (no longer
    Z - Z_A)."""
    torch.manual_seed(0)
    views = [torch.randn(3, 8, 5), torch.randn(3, 8, 5)]
    plain = KoopmanDecoupler(xi=0.01)(torch.nn.Identity(), views)
    forced = KoopmanDecoupler(xi=0.01, min_static=2)(torch.nn.Identity(),
                                                     views)
    assert forced.statistics['num_static_modes'] > plain.statistics[
        'num_static_modes']
    std = KoopmanDecoupler(dynamic_pool='std')(torch.nn.Identity(), views)
    mean = KoopmanDecoupler()(torch.nn.Identity(), views)
    torch.testing.assert_close(std.parts['static'], mean.parts['static'])
    assert (std.parts['dynamic'] >= 0).all()
    assert not torch.allclose(std.parts['dynamic'], mean.parts['dynamic'])


@pytest.mark.parametrize('kwargs,match', [
    (dict(xi=0.0), 'xi=0.0'),
    (dict(xi=-0.1), 'xi=-0.1'),
    (dict(estimator='least_squares'), "estimator='least_squares'"),
    (dict(split='qr'), "split='qr'"),
    (dict(spectral_grad='none'), "spectral_grad='none'"),
    (dict(nu=-1.0), 'nu=-1.0'),
    (dict(contrast='both'), "contrast='both'"),
    (dict(min_static=-1), 'min_static=-1'),
    (dict(dynamic_pool='max'), "dynamic_pool='max'"),
])
def test_bad_koopman_config_is_refused_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MODELS.build(dict(type='KoopmanDecoupler', **kwargs))


def test_koopman_refuses_bad_features():
    decoupler = KoopmanDecoupler()
    with pytest.raises(ValueError, match='T=1'):
        decoupler(torch.nn.Identity(), [torch.randn(2, 8, 1)] * 2)
    with pytest.raises(ValueError, match='at least 2 views'):
        decoupler.prediction_loss([torch.randn(2, 8, 6)])


# ----------------------------------------------------------- derived inputs
def test_derived_inputs_carry_only_their_kind():
    torch.manual_seed(0)
    clips = torch.randn(3, 3, 5, 4, 4)
    static = static_frame_clip(clips, torch.tensor([0, 2, 4]))
    assert static.shape == clips.shape
    for b, t in enumerate((0, 2, 4)):
        assert torch.equal(static[b], clips[b, :, t:t + 1].expand(-1, 5, -1,
                                                                  -1))
    diff = frame_difference_clip(clips)
    assert diff.shape == (3, 3, 4, 4, 4)
    torch.testing.assert_close(diff[:, :, 1], clips[:, :, 2] - clips[:, :, 1])
    # A constant colour (per channel) leaves no trace in grey differences
    # of a moving pattern only if it is constant in time: it cancels.
    coloured = clips + torch.tensor([1.0, -2.0, 3.0]).view(1, 3, 1, 1, 1)
    torch.testing.assert_close(frame_difference_clip(coloured, True),
                               frame_difference_clip(clips, True))
    assert torch.equal(frame_difference_clip(clips, True)[:, 0],
                       frame_difference_clip(clips, True)[:, 2])
    with pytest.raises(ValueError, match=r'indices in \[0, 5\)'):
        static_frame_clip(clips, torch.tensor([0, 1, 5]))
    with pytest.raises(ValueError, match='T=1'):
        frame_difference_clip(clips[:, :, :1])


def test_derived_input_decoupler_encodes_each_input(tmp_path):
    torch.manual_seed(0)
    clips = decoded_clips(tmp_path, frames=8)
    backbone, neck = tiny_backbone(), build_neck(in_channels=32)
    seen: List[Tensor] = []

    def encoder(x):
        seen.append(x)
        return neck(backbone(x))

    decoupler = DerivedInputDecoupler(static_frame='middle')
    out = decoupler(encoder, [clips, clips.flip(0)])
    assert set(out.parts) == {'static', 'dynamic'} and not out.statistics
    assert out.parts['static'].shape == (2, 2, 8)
    assert out.parts['dynamic'].shape == (2, 2, 8)
    static_in, dynamic_in = seen  # one pass per kind, views batched
    assert static_in.shape == (4, 3, 8, 32, 32)
    assert torch.equal(static_in[:, :, 0], static_in[:, :, 7])
    assert torch.equal(static_in[0, :, 0], clips[0, :, 4])
    assert dynamic_in.shape == (4, 3, 7, 32, 32)
    with pytest.raises(NotImplementedError, match='no lower-level loss'):
        decoupler.lower_loss(encoder, [clips, clips])
    with pytest.raises(ValueError, match="static_frame='last'"):
        DerivedInputDecoupler(static_frame='last')


def test_unified_embedding_is_the_temporal_mean():
    views = [torch.randn(3, 8, 5), torch.randn(3, 8, 5)]
    out = UnifiedEmbedding()(torch.nn.Identity(), views)
    torch.testing.assert_close(out.parts['unified'],
                               torch.stack(views).mean(-1))
    assert not UnifiedEmbedding.has_lower_loss


# ---------------------------------------------- the interface, extended
@MODELS.register_module(force=True)
class FirstAndLastFrame(BaseDecoupler):
    """A toy decoupler written against the interface alone: parts from the
    first and the last per-frame embedding, a smoothness lower loss."""
    parts = ('first', 'last')
    statistics = ('mean_norm', )
    has_lower_loss = True

    def forward(self, encoder: Encoder, views: List[Tensor],
                with_lower_loss: bool = False) -> Decoupled:
        z = encode_views(encoder, views)
        lower = self.lower_loss(encoder, views) if with_lower_loss else {}
        return Decoupled(
            dict(first=z[..., 0], last=z[..., -1]),
            dict(mean_norm=z.detach().norm(dim=2).mean()), lower)

    def lower_loss(self, encoder: Encoder,
                   views: List[Tensor]) -> Dict[str, Tensor]:
        z = encode_views(encoder, views)
        return dict(loss_smooth=(z[..., 1:] - z[..., :-1]).square().mean())


EMBED = 16
HEADS = {
    'VSimCLR': dict(type='MultiViewContrastiveHead'),
    'VMoCo': dict(type='MoCoQueueHead', embed_dim=EMBED, queue_len=32),
    'VBYOL': dict(type='BYOLPredictionHead', in_channels=EMBED,
                  hidden_channels=32, out_channels=EMBED),
    'VSwAV': dict(type='SwAVPrototypeHead', embed_dim=EMBED,
                  num_prototypes=8),
}


def toy_model(algorithm: str) -> dict:
    return dict(
        type=algorithm,
        backbone=dict(type='ResNet3dSlowOnly', depth=18, base_channels=4,
                      pretrained=None, norm_eval=False),
        neck=dict(type='PerFrameProjectionNeck', in_channels=32,
                  hid_channels=32, out_channels=EMBED, num_layers=2),
        head=copy.deepcopy(HEADS[algorithm]),
        decoupler=dict(type='FirstAndLastFrame'),
        data_preprocessor=dict(type='MultiViewDataPreprocessor',
                               mean=[127.5] * 3, std=[64.0] * 3))


@pytest.fixture(scope='module')
def video_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('videos'))
    make_video_dataset(root, num_videos=4, num_frames=16, size=(32, 32))
    return root


@pytest.mark.parametrize('optim_type', ['OptimWrapper', 'BiLevelOptimWrapper'],
                         ids=['single-level', 'bi-level'])
@pytest.mark.parametrize('algorithm', ['VSimCLR', 'VMoCo', 'VBYOL', 'VSwAV'])
def test_a_new_decoupler_trains_with_every_algorithm(algorithm, optim_type,
                                                     video_root, tmp_path):
    """A decoupler defined here (not in the package) trains with every
    algorithm through MMEngine's Runner, single-level and bi-level, with no
    edit to the algorithms or the wrapper."""
    runner = Runner(
        model=toy_model(algorithm),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            batch_size=4, num_workers=0, drop_last=True,
            sampler=dict(type='InfiniteSampler', shuffle=False),
            dataset=dict(
                type='MultiViewVideoDataset',
                ann_file=osp.join(video_root, 'ann.txt'),
                data_prefix=dict(video=video_root),
                pipeline=multiview_pretrain_pipeline(
                    num_views=2, clip_len=4, frame_interval=2, size=32))),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=2),
        optim_wrapper=dict(type=optim_type,
                           optimizer=dict(type='SGD', lr=0.01)),
        default_hooks=dict(logger=dict(type='LoggerHook', interval=1),
                           checkpoint=None),
        custom_hooks=[dict(type='AfterOptimStepHook')],
        randomness=dict(seed=0),
        default_scope='mmaction',
        # Runners built in the same second would share a MessageHub.
        experiment_name=f'{algorithm}-{optim_type}-{uuid.uuid4().hex}',
        log_level='WARNING')
    runner.train()
    model = runner.model
    assert set(model.heads) == {'first', 'last'}
    scalars = runner.message_hub.log_scalars
    for key in ('train/loss_first', 'train/loss_last', 'train/mean_norm'):
        assert torch.isfinite(torch.tensor(scalars[key].current())), key
    assert ('train/loss_smooth' in scalars) == (
        optim_type == 'BiLevelOptimWrapper')


# ------------------------------------------------------------------ legacy
def test_checkpoint_written_before_the_interface_loads():
    """A V-BYOL BOD-VCL checkpoint of mmbodvcl 0.1 (its own config,
    ``decouple=True`` and the Koopman options in ``KoopmanNeck``; numbered
    MLP layers; a momentum copy) loads strictly and gives the embeddings
    that code gave."""
    saved = torch.load(LEGACY_CHECKPOINT, map_location='cpu')
    model = MODELS.build(saved['config'])
    assert isinstance(model.decoupler, KoopmanDecoupler)
    assert model.decoupler.xi == 0.2 and model.decoupler.loss_cfg['nu'] == 1e-3
    model.load_state_dict(saved['state_dict'], strict=True)
    model.eval()
    with torch.no_grad():
        z = model.encode(saved['probe'])
        split = model.decoupler.split(z)
        predicted = model.heads['static'].predictor(split.static)
    # Same arithmetic, but CPUs of other vector widths sum in other orders:
    # float32 round-off (~1e-7 relative) may differ, while a key loaded into
    # the wrong module, or a legacy option mapped to the wrong setting,
    # changes these values at their own scale.
    for name, value in (('z', z), ('static', split.static),
                        ('dynamic', split.dynamic),
                        ('predicted', predicted)):
        torch.testing.assert_close(value, saved[name], rtol=1e-4,
                                   atol=1e-4 * saved[name].abs().max())
    target_neck = model.target_net.module[1]
    assert isinstance(target_neck.projector.bn2, torch.nn.BatchNorm1d)


def test_legacy_arguments_map_onto_decouplers():
    base = toy_model('VSimCLR')
    base.pop('decoupler')
    base['neck'].update(type='KoopmanNeck', xi=0.3, estimator='ridge')
    cases = {
        (True, False): (KoopmanDecoupler, ('static', 'dynamic'), False),
        (True, True): (KoopmanDecoupler, ('static', 'dynamic'), True),
        (False, True): (KoopmanDecoupler, ('unified', ), True),
        (False, False): (UnifiedEmbedding, ('unified', ), False),
    }
    for (decouple, with_pred), (kind, parts, lower) in cases.items():
        model = MODELS.build(
            dict(copy.deepcopy(base), decouple=decouple,
                 with_pred_loss=with_pred))
        assert type(model.decoupler) is kind
        assert tuple(model.decoupler.parts) == parts
        assert model.with_lower_loss == lower
        if kind is KoopmanDecoupler:
            assert model.decoupler.xi == 0.3
            assert model.decoupler.loss_cfg['estimator'] == 'ridge'
    with pytest.raises(ValueError, match='cannot be combined'):
        MODELS.build(dict(copy.deepcopy(base), decouple=True,
                          decoupler=dict(type='KoopmanDecoupler')))
    with pytest.raises(TypeError, match=r"\['decoupled'\]"):
        MODELS.build(dict(copy.deepcopy(base), decoupled=True))


def test_lower_level_options_need_a_lower_loss():
    cfg = toy_model('VSimCLR')
    cfg['decoupler'] = dict(type='DerivedInputDecoupler')
    for option in ('with_lower_loss', 'strict_lower'):
        with pytest.raises(ValueError, match=f'{option}=True needs a '
                           'decoupler with a lower-level loss'):
            MODELS.build(dict(copy.deepcopy(cfg), **{option: True}))
    assert not MODELS.build(cfg).has_lower_loss
