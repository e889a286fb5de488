"""The four V-CL algorithms, plain and BOD-VCL, trained by MMEngine's Runner
on generated videos through the real multi-view data path."""
import copy
import os.path as osp
from typing import Dict, List

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.dist import all_gather
from mmengine.hooks import Hook
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from mmbodvcl.models.algorithms import CosineMomentumEncoder
from helpers import (LossRecorder, free_port, gloo_rank, make_video_dataset,
                     multiview_pretrain_pipeline)

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
CLIP_LEN, SIZE, BATCH = 4, 32, 4
MAX_ITERS = 4
EMBED = 16
BACKBONE = dict(
    type='ResNet3dSlowOnly',
    depth=18,
    base_channels=8,
    pretrained=None,
    pretrained2d=False,
    norm_eval=False)
BACKBONE_OUT = 64  # 8 * 2**3, BasicBlock3d

HEADS = {
    'VSimCLR':
    dict(
        type='MultiViewContrastiveHead',
        loss=dict(type='MultiViewInfoNCELoss', temperature=0.1)),
    'VMoCo':
    dict(
        type='MoCoQueueHead',
        embed_dim=EMBED,
        queue_len=64,
        loss=dict(type='QueueInfoNCELoss', temperature=0.1)),
    'VBYOL':
    dict(
        type='BYOLPredictionHead',
        in_channels=EMBED,
        hidden_channels=32,
        out_channels=EMBED),
    'VSwAV':
    dict(
        type='SwAVPrototypeHead',
        embed_dim=EMBED,
        num_prototypes=8,
        freeze_prototypes_iters=2,
        loss=dict(type='SwAVLoss', temperature=0.1, epsilon=0.05,
                  sinkhorn_iters=3)),
}
SGD = dict(type='SGD', lr=0.05, momentum=0.9, weight_decay=1e-4)
OPTIMIZERS = {'VSimCLR': SGD, 'VMoCo': SGD, 'VSwAV': SGD,
              'VBYOL': dict(type='Adam', lr=3e-3)}


def model_cfg(algorithm: str, decouple: bool, with_lower_loss: bool = False,
              **kwargs) -> Dict:
    """``decouple``: BOD-VCL's Koopman split; ``with_lower_loss`` without it:
    the "+ L_pred" ablation (unified loss plus L_pred)."""
    decoupler = None
    if decouple or with_lower_loss:
        decoupler = dict(type='KoopmanDecoupler',
                         contrast='split' if decouple else 'unified')
    neck = dict(
        type='PerFrameProjectionNeck',
        in_channels=BACKBONE_OUT,
        hid_channels=32,
        out_channels=EMBED,
        num_layers=2 if algorithm == 'VBYOL' else 3,
        with_last_bn=algorithm != 'VBYOL')  # BYOL's projector ends linear
    cfg = dict(
        type=algorithm,
        backbone=copy.deepcopy(BACKBONE),
        neck=neck,
        head=copy.deepcopy(HEADS[algorithm]),
        decoupler=decoupler,
        with_lower_loss=with_lower_loss,
        data_preprocessor=dict(
            type='MultiViewDataPreprocessor', mean=MEAN, std=STD))
    cfg.update(kwargs)
    return cfg


pytestmark = pytest.mark.usefixtures('mmaction_scope')


@pytest.fixture(scope='module')
def video_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('videos'))
    make_video_dataset(root, num_videos=BATCH, num_frames=24, size=(48, 64))
    return root


class InitialWeights(Hook):
    """Copies the model's parameters into ``store`` before training."""

    def __init__(self, store: Dict[str, torch.Tensor]) -> None:
        self.store = store

    def before_train(self, runner) -> None:
        self.store.update({
            name: param.detach().clone()
            for name, param in runner.model.named_parameters()
        })


def train(algorithm: str, decouple: bool, video_root: str, work_dir: str,
          max_iters: int = MAX_ITERS, optim_wrapper: Dict = None,
          runner_kwargs: Dict = None, custom_hooks: List = (),
          **model_kwargs):
    """Train with MMEngine's Runner; returns the runner and the recorder.
    ``runner_kwargs`` go to the Runner (e.g. ``launcher``)."""
    recorder = LossRecorder()
    runner = Runner(
        model=model_cfg(algorithm, decouple, **model_kwargs),
        work_dir=work_dir,
        train_dataloader=dict(
            batch_size=BATCH,
            num_workers=0,
            # One epoch is one batch here; InfiniteSampler avoids the
            # loop's 2 s pause at every epoch end.
            sampler=dict(type='InfiniteSampler', shuffle=False),
            drop_last=True,
            dataset=dict(
                type='MultiViewVideoDataset',
                ann_file=osp.join(video_root, 'ann.txt'),
                data_prefix=dict(video=video_root),
                pipeline=multiview_pretrain_pipeline(
                    num_views=2, clip_len=CLIP_LEN, frame_interval=2,
                    size=SIZE))),
        train_cfg=dict(type='IterBasedTrainLoop', max_iters=max_iters),
        optim_wrapper=optim_wrapper or dict(
            optimizer=copy.deepcopy(OPTIMIZERS[algorithm])),
        default_hooks=dict(
            logger=dict(type='LoggerHook', interval=max_iters),
            checkpoint=dict(type='CheckpointHook', interval=max_iters,
                            by_epoch=False)),
        custom_hooks=[recorder, dict(type='AfterOptimStepHook'),
                      *custom_hooks],
        randomness=dict(seed=0),
        default_scope='mmaction',
        log_level='WARNING',
        **(runner_kwargs or {}))
    runner.train()
    return runner, recorder.history


@pytest.mark.parametrize('decouple', [False, True],
                         ids=['baseline', 'bodvcl'])
@pytest.mark.parametrize('algorithm', ['VSimCLR', 'VMoCo', 'VBYOL', 'VSwAV'])
def test_trains_in_runner_and_checkpoint_loads_into_recognizer(
        algorithm, decouple, video_root, tmp_path):
    initial = {}
    runner, history = train(algorithm, decouple, video_root, str(tmp_path),
                            custom_hooks=[InitialWeights(initial)])
    parts = ('static', 'dynamic') if decouple else ('unified', )
    assert len(history) == MAX_ITERS
    for entry in history:
        for part in parts:
            assert torch.isfinite(torch.tensor(entry[f'loss_{part}']))
    # The Runner's steps moved every trained tensor of the encoder and left
    # it finite (a loss trend over a few iterations is not a property of
    # the code; tests below check that every loss reaches the backbone).
    for name, param in runner.model.named_parameters():
        if name.startswith(('backbone.', 'neck.')) and param.requires_grad:
            assert torch.isfinite(param).all(), name
            assert not torch.equal(param, initial[name]), name
    if decouple:
        # The logged counts are per-clip mode counts averaged over the
        # iteration's BATCH x 2 clips: whole multiples of 1 / (2 BATCH), the
        # static ones at most the r = T - 1 modes of a clip.
        clips = 2 * BATCH
        for entry in history:
            for key in ('num_static_modes', 'num_dynamic_modes'):
                count = entry[key] * clips
                assert abs(count - round(count)) < 1e-4, (key, entry[key])
            assert 0 <= entry['num_static_modes'] <= CLIP_LEN - 1

    model = runner.model
    if hasattr(model, 'target_net'):
        assert all(not p.requires_grad for p in model.target_net.parameters())
        assert int(model.target_net.steps) == MAX_ITERS
        online = dict(model.backbone.named_parameters())
        target = dict(model.target_net.module[0].named_parameters())
        assert any(not torch.equal(online[k], target[k]) for k in online)

    checkpoint = torch.load(
        osp.join(str(tmp_path), f'iter_{MAX_ITERS}.pth'), map_location='cpu')
    state = checkpoint['state_dict']
    if algorithm == 'VMoCo':
        for part in parts:  # one queue per part, checkpointed
            assert f'heads.{part}.queue' in state
        assert 'target_net.steps' in state
    assert not any(k.startswith('backbone.') and 'target' in k for k in state)
    recognizer = MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=copy.deepcopy(BACKBONE),
            cls_head=dict(
                type='I3DHead', num_classes=2, in_channels=BACKBONE_OUT),
            data_preprocessor=dict(
                type='ActionDataPreprocessor', mean=MEAN, std=STD,
                format_shape='NCTHW')))
    missing, _ = recognizer.load_state_dict(state, strict=False)
    assert not [k for k in missing if k.startswith('backbone.')]
    backbone_state = {
        k[len('backbone.'):]: v
        for k, v in state.items() if k.startswith('backbone.')
    }
    recognizer.backbone.load_state_dict(backbone_state, strict=True)
    for name, value in recognizer.backbone.state_dict().items():
        assert torch.equal(value, model.backbone.state_dict()[name])


def test_bilevel_optim_wrapper_drives_lower_and_upper_levels(
        video_root, tmp_path):
    """``train_step`` hands its losses to
    ``BiLevelOptimWrapper.update_params_bilevel``; the momentum encoder still
    follows after each step."""
    runner, history = train(
        'VMoCo', True, video_root, str(tmp_path), max_iters=3,
        optim_wrapper=dict(
            type='BiLevelOptimWrapper',
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
            hypergrad=dict(type='aid_fd')))
    assert len(history) == 3
    for entry in history:
        for key in ('loss_pred', 'loss_static', 'loss_dynamic'):
            assert torch.isfinite(torch.tensor(entry[key])), key
    assert int(runner.model.target_net.steps) == 3


def tiny_model(algorithm: str = 'VSimCLR', decouple: bool = True, **kwargs):
    model = MODELS.build(model_cfg(algorithm, decouple, **kwargs))
    model.init_weights()
    return model


def clips(num_views: int = 2, batch: int = 3) -> List[torch.Tensor]:
    torch.manual_seed(0)
    return [torch.randn(batch, 3, CLIP_LEN, SIZE, SIZE)
            for _ in range(num_views)]


def test_loss_entries_follow_the_ablation_switches():
    views = clips()
    expected = {
        (False, False): {'loss_unified'},
        (False, True): {'loss_unified', 'loss_pred'},  # + L_pred
        (True, False): {'loss_static', 'loss_dynamic'},
        (True, True): {'loss_static', 'loss_dynamic', 'loss_pred'},
    }
    for (decouple, with_pred), loss_keys in expected.items():
        model = tiny_model(decouple=decouple, with_lower_loss=with_pred)
        losses = model(views, mode='loss')
        assert {k for k in losses if 'loss' in k} == loss_keys
        assert all(torch.isfinite(v).all() for v in losses.values())
        if decouple:
            assert losses['num_static_modes'] + losses[
                'num_dynamic_modes'] == CLIP_LEN - 1
        assert model.has_lower_loss == (decouple or with_pred)
        if model.has_lower_loss:
            assert set(model.loss_lower(views)) >= {'loss_pred'}
        assert not any('pred' in k for k in model.loss_upper(views))


MOMENTUM_ARGS = {'VMoCo': dict(total_iters=10), 'VBYOL': dict(total_iters=10)}


@pytest.mark.parametrize('decouple', [False, True],
                         ids=['baseline', 'bodvcl'])
@pytest.mark.parametrize('algorithm', ['VSimCLR', 'VMoCo', 'VBYOL', 'VSwAV'])
def test_every_loss_reaches_the_backbone(algorithm, decouple):
    """Each contrastive loss sends a finite, nonzero gradient into the
    backbone, except a static loss whose clips have no static mode (Z_A = 0
    is constant), which must send none."""
    model = tiny_model(algorithm, decouple=decouple,
                       **MOMENTUM_ARGS.get(algorithm, {}))
    losses = model.loss(clips())
    backbone = list(model.backbone.parameters())
    for key in [k for k in losses if k.startswith('loss_')]:
        grads = torch.autograd.grad(losses[key], backbone,
                                    retain_graph=True, allow_unused=True)
        norm = torch.stack([g.norm() for g in grads if g is not None]).sum()
        assert torch.isfinite(norm), key
        empty = key == 'loss_static' and losses['num_static_modes'] == 0
        assert (norm == 0) if empty else (norm > 0), (key, norm)


def test_decoupled_heads_are_separate():
    model = tiny_model('VMoCo', decouple=True, total_iters=10)
    assert set(model.heads) == {'static', 'dynamic'}
    assert model.heads.static.queue.data_ptr() != (
        model.heads.dynamic.queue.data_ptr())
    before = model.heads.static.queue.clone()
    model(clips(), mode='loss')
    assert not torch.equal(before, model.heads.static.queue)
    assert int(model.heads.static.queue_ptr) == 2 * 3  # V * N keys
    swav = tiny_model('VSwAV', decouple=True)
    assert swav.heads.static.prototypes.weight is not (
        swav.heads.dynamic.prototypes.weight)


def test_momentum_encoder_is_outside_backbone_and_frozen():
    model = tiny_model('VBYOL', decouple=False, total_iters=10)
    for name, param in model.named_parameters():
        if name.startswith('target_net.'):
            assert not param.requires_grad, name
    assert not any(
        k.startswith('backbone.') and 'target' in k
        for k in model.state_dict())
    # init_weights leaves the copy equal to the initialised online encoder.
    for name, value in model.backbone.state_dict().items():
        assert torch.equal(value,
                           model.target_net.module[0].state_dict()[name])


def test_cosine_momentum_schedule_and_resume_state():
    online = torch.nn.Linear(2, 2)
    ema = CosineMomentumEncoder(online, base_momentum=0.99, total_iters=10)
    assert ema.current_momentum(0) == pytest.approx(0.99)
    assert ema.current_momentum(5) == pytest.approx(0.995)
    assert ema.current_momentum(10) == pytest.approx(1.0)
    assert ema.current_momentum(20) == pytest.approx(1.0)
    ema.update_parameters(online)  # the first update copies
    with torch.no_grad():
        online.weight.add_(1.0)
    old = ema.module.weight.clone()
    ema.update_parameters(online)
    gamma = ema.current_momentum(1)
    assert torch.allclose(ema.module.weight,
                          gamma * old + (1 - gamma) * online.weight)
    state = ema.state_dict()
    assert int(state['steps']) == 2
    resumed = CosineMomentumEncoder(
        torch.nn.Linear(2, 2), base_momentum=0.99, total_iters=10)
    resumed.load_state_dict(state)
    assert int(resumed.steps) == 2
    with pytest.raises(ValueError, match='base_momentum'):
        CosineMomentumEncoder(online, base_momentum=1.0)


def test_cosine_momentum_needs_a_length():
    from mmengine.logging import MessageHub
    MessageHub.get_instance('test-no-max-iters')  # a hub without max_iters
    ema = CosineMomentumEncoder(torch.nn.Linear(2, 2), base_momentum=0.99)
    with pytest.raises(RuntimeError, match='total_iters'):
        ema.current_momentum(1)


def test_swav_prototypes_frozen_then_trained_and_normalised():
    head = MODELS.build(dict(HEADS['VSwAV'], freeze_prototypes_iters=1))
    embeddings = torch.randn(2, 6, EMBED, requires_grad=True)
    head.loss(embeddings).backward()
    assert head.prototypes.weight.grad is None  # frozen in step 0
    assert embeddings.grad is not None
    with torch.no_grad():
        head.prototypes.weight.mul_(3.0)
    head.after_optim_step()
    assert torch.allclose(head.prototypes.weight.norm(dim=1),
                          torch.ones(8), atol=1e-6)
    head.loss(embeddings).backward()
    assert head.prototypes.weight.grad is not None
    assert torch.isfinite(head.prototypes.weight.grad).all()


def test_moco_queue_wraps_and_refuses_oversized_batches():
    head = MODELS.build(dict(HEADS['VMoCo'], embed_dim=4, queue_len=6))
    first, second = torch.randn(2, 2, 2, 4)  # each (V=2, N=2, D=4)
    head.enqueue(first)  # rows 0-3
    head.enqueue(second)  # rows 4, 5, then 0, 1
    assert int(head.queue_ptr) == 2

    def rows(keys):  # the (V, N, D) keys in queue order, normalised
        return torch.nn.functional.normalize(keys.reshape(4, 4), dim=1)

    expected = torch.cat([rows(second)[2:], rows(first)[2:],
                          rows(second)[:2]])
    assert torch.allclose(head.queue, expected)
    with pytest.raises(ValueError, match='queue_len'):
        head.enqueue(torch.randn(2, 4, 4))
    with pytest.raises(ValueError, match=r'\(V, N, 4\)'):
        head.loss(torch.randn(2, 2, 5), torch.randn(2, 2, 5))


def test_strict_lower_level_is_temporally_local():
    views = clips()
    grads = {}
    for strict in (False, True):
        # No zero-initialised residual BatchNorm: layer3's conv1 must get a
        # gradient at step 0.
        model = tiny_model(
            strict_lower=strict,
            backbone=dict(BACKBONE, zero_init_residual=False))
        torch.manual_seed(1)
        loss = model.loss_lower(views)['loss_pred']
        assert torch.isfinite(loss)
        loss.backward()
        # layer3 has temporal kernels of size 3 (ResNet3dSlowOnly inflate).
        weight = model.backbone.layer3[0].conv1.conv.weight
        assert weight.shape[2] == 3
        grads[strict] = weight.grad
    assert grads[True][:, :, [0, 2]].abs().max() == 0
    assert grads[False][:, :, [0, 2]].abs().max() > 0
    assert grads[True][:, :, 1].abs().max() > 0


def test_modes_and_bad_inputs():
    model = tiny_model()
    views = clips()
    feats = model(views[0], mode='tensor')
    assert feats.shape[:3] == (3, BACKBONE_OUT, CLIP_LEN)
    assert len(model(views, mode='tensor')) == 2
    with pytest.raises(NotImplementedError, match='downstream'):
        model(views, mode='predict')
    with pytest.raises(TypeError, match='list of views'):
        model(views[0], mode='loss')
    with pytest.raises(ValueError, match='>= 2 views'):
        model(views[:1], mode='loss')
    with pytest.raises(ValueError, match='share one'):
        model([views[0], views[1][:2]], mode='loss')


def _single_level_ddp_worker(rank: int, port: int, video_root: str,
                             work_dir: str) -> None:
    init_default_scope('mmaction')
    with gloo_rank(rank, 2, port):
        runner, _ = train(
            'VMoCo', False, video_root, osp.join(work_dir, str(rank)),
            max_iters=2,
            runner_kwargs=dict(launcher='pytorch'))
        model = runner.model.module
        assert int(model.target_net.steps) == 2  # the EMA ran every iteration
        target = torch.cat(
            [p.flatten() for p in model.target_net.parameters()])
        gathered = all_gather(target)
        torch.testing.assert_close(gathered[0], gathered[1])


def test_single_level_ddp_runs_the_momentum_update(video_root, tmp_path):
    """Under DDP, MMEngine's wrapper never calls the model's ``train_step``;
    ``AfterOptimStepHook`` must still move the momentum encoder, on
    every rank alike (2 gloo processes, V-MoCo baseline)."""
    mp.start_processes(
        _single_level_ddp_worker,
        args=(free_port(), video_root, str(tmp_path)),
        nprocs=2,
        start_method='spawn')
