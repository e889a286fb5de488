"""StaticDynamicConcepts through MMEngine's Runner on generated videos:
training, two gloo ranks against one process, bit-exact resume, AMP, and
loading the checkpoint into a recogniser.

Tolerances: resume is bit-for-bit (``torch.equal``); the 2-process run
matches the 1-process run on the same global batch within 1e-5 relative
(float32 summation order of the all-reduces).
"""
import copy
import itertools
import os.path as osp
from typing import Dict, List

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.dist import get_world_size
from mmengine.logging import MessageHub
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from helpers import LossRecorder, free_port, gloo_rank, make_video_dataset
# helpers of other test modules (pytest puts tests/ on sys.path)

MEAN, STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)
CLIP_LEN, INTERVAL, SIZE = 4, 2, 32
SPAN = (CLIP_LEN - 1) * INTERVAL + 1
BACKBONE_OUT = 64
_RUN_IDS = itertools.count()


def model_cfg(deterministic: bool = False) -> Dict:
    """A tiny model. ``deterministic``: the static frame is the middle one
    and no BatchNorm uses batch statistics (frozen backbone BN, no BN in
    the head), so that results cannot depend on how the batch is split
    across ranks (CPU has no SyncBN)."""
    return dict(
        type='StaticDynamicConcepts',
        backbone=dict(
            type='ResNet3dSlowOnly',
            depth=18,
            base_channels=8,
            pretrained=None,
            pretrained2d=False,
            norm_eval=deterministic),
        decoupler=dict(
            type='DerivedInputDecoupler',
            static_frame='middle' if deterministic else 'random'),
        head=dict(
            type='ConceptHead',
            in_channels=BACKBONE_OUT,
            num_static=10,
            num_dynamic=10,
            projection=dict(hid_channels=32, out_channels=16),
            recon_hid_channels=32,
            queue_len=32,
            norm_cfg=None if deterministic else dict(type='BN1d'),
            entropy_loss=dict(type='ConceptEntropyLoss')),
        local_contrast=dict(
            type='LocalConceptContrast',
            in_channels=BACKBONE_OUT,
            embed_dim=16,
            top_ratio=0.3,
            warmup_epochs=1),
        data_preprocessor=dict(
            type='MultiViewDataPreprocessor', mean=MEAN, std=STD))


def pipeline(random_augment: bool) -> List[Dict]:
    """Two views of ``CLIP_LEN`` frames; on videos of exactly ``SPAN``
    frames the sampling has one outcome, and without ``random_augment``
    nothing else is random."""
    per_view = [dict(type='Resize', scale=(SIZE, SIZE), keep_ratio=False)]
    if random_augment:
        per_view = [dict(type='RandomResizedCrop')] + per_view + [
            dict(type='Flip', flip_ratio=0.5)
        ]
    return [
        dict(type='MultiViewDecordInit'),
        dict(
            type='MultiViewSampleFrames',
            clip_len=CLIP_LEN,
            frame_interval=INTERVAL,
            num_views=2),
        dict(type='MultiViewDecordDecode'),
        dict(type='MultiViewAugment', transforms=per_view),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackMultiViewInputs'),
    ]


def runner_cfg(videos: Dict[str, str], work_dir: str, max_epochs: int = 3,
               batch_size: int = 4, deterministic: bool = False,
               **extra) -> Config:
    cfg = dict(
        default_scope='mmaction',
        work_dir=work_dir,
        # Runners built in the same second would share a MessageHub.
        experiment_name=f'{osp.basename(work_dir)}_{next(_RUN_IDS)}',
        model=model_cfg(deterministic),
        train_dataloader=dict(
            batch_size=batch_size,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            drop_last=True,
            dataset=dict(
                type='MultiViewVideoDataset',
                ann_file=videos['ann'],
                data_prefix=dict(video=videos['root']),
                pipeline=pipeline(random_augment=not deterministic))),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9,
                           weight_decay=1e-4)),
        param_scheduler=[
            dict(type='CosineAnnealingLR', T_max=max_epochs, by_epoch=True,
                 begin=0, end=max_epochs)
        ],
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1),
            after_optim_step=dict(type='AfterOptimStepHook')),
        randomness=dict(seed=0),
        log_level='WARNING')
    cfg.update(extra)
    return Config(cfg)


pytestmark = pytest.mark.usefixtures('mmaction_scope')


@pytest.fixture(scope='module')
def videos(tmp_path_factory) -> Dict[str, str]:
    root = str(tmp_path_factory.mktemp('videos'))
    ann = make_video_dataset(
        root, num_videos=4, num_frames=SPAN, size=(48, 64), seed=5)
    return dict(ann=ann, root=root)


def _state(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_trains_in_runner_and_checkpoint_loads_into_recognizer(
        videos, tmp_path):
    recorder = LossRecorder()
    cfg = runner_cfg(videos, str(tmp_path))
    runner = Runner(**cfg.to_dict(), custom_hooks=[recorder])
    runner.train()
    history = recorder.history
    assert len(history) == 3  # one iteration per epoch
    global_keys = {'loss_align_static', 'loss_align_dynamic',
                   'loss_sparsity', 'loss_recon', 'loss_entropy'}
    local_keys = {'loss_local_static', 'loss_local_dynamic',
                  'valid_static', 'valid_dynamic'}
    assert global_keys <= set(history[0])
    assert not local_keys & set(history[0])  # epoch 0: warm-up
    for entry in history[1:]:
        assert global_keys | local_keys <= set(entry)
    for entry in history:
        assert all(torch.isfinite(torch.tensor(v)) for v in entry.values())
    model = runner.model
    assert int(model.head.num_steps) == 3
    for layer in model.head.prototypes.values():
        norms = layer.weight.norm(dim=1)
        assert torch.allclose(norms, torch.ones_like(norms), atol=1e-6)

    state = torch.load(
        str(tmp_path / 'epoch_3.pth'), map_location='cpu')['state_dict']
    assert {'head.static_queue', 'head.num_steps',
            'local_contrast.query_proj.weight'} <= set(state)
    recognizer = MODELS.build(
        dict(
            type='Recognizer3D',
            backbone=copy.deepcopy(model_cfg()['backbone']),
            cls_head=dict(
                type='I3DHead', num_classes=2, in_channels=BACKBONE_OUT),
            data_preprocessor=dict(
                type='ActionDataPreprocessor', mean=MEAN, std=STD,
                format_shape='NCTHW')))
    missing, _ = recognizer.load_state_dict(state, strict=False)
    assert not [k for k in missing if k.startswith('backbone.')]


def test_resume_is_bit_exact(videos, tmp_path):
    """Weights, BN statistics, queue, step count, optimiser state and the
    epoch-based warm-up (read from the restored MessageHub) all resume."""
    straight = Runner.from_cfg(
        runner_cfg(videos, str(tmp_path / 'straight'), max_epochs=3,
                   deterministic=True))
    straight.train()
    cut = runner_cfg(videos, str(tmp_path / 'cut'), max_epochs=3,
                     deterministic=True)
    cut.train_cfg.max_epochs = 1  # stop inside the local warm-up's end
    Runner.from_cfg(cut).train()
    resumed_cfg = runner_cfg(videos, str(tmp_path / 'cut'), max_epochs=3,
                             deterministic=True)
    resumed_cfg.resume = True
    resumed = Runner.from_cfg(resumed_cfg)
    resumed.train()
    expected, got = _state(straight.model), _state(resumed.model)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key


def test_losses_are_float32_and_finite_under_bfloat16_autocast():
    """MMEngine's AmpOptimWrapper needs a GPU; on CPU, autocast itself:
    the loss maths runs in float32 outside it, gradients stay finite."""
    hub = MessageHub.get_instance('concepts-autocast')
    hub.update_info('epoch', 1)  # past the local warm-up
    model = MODELS.build(model_cfg())
    model.init_weights()
    torch.manual_seed(0)
    views = [torch.randn(4, 3, CLIP_LEN, SIZE, SIZE) for _ in range(2)]
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = model.loss(views)
    assert 'loss_local_static' in losses
    for name, value in losses.items():
        assert value.dtype == torch.float32, name
        assert torch.isfinite(value), name
    sum(v for k, v in losses.items() if 'loss' in k).backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name


def test_bad_decoupler_and_views_are_named():
    cfg = model_cfg()
    cfg['decoupler'] = dict(type='KoopmanDecoupler')
    with pytest.raises(ValueError, match='KoopmanDecoupler'):
        MODELS.build(cfg)
    model = MODELS.build(model_cfg())
    clip = torch.randn(2, 3, CLIP_LEN, SIZE, SIZE)
    assert set(model.loss([clip])) >= {'loss_align_static', 'loss_recon'}
    with pytest.raises(ValueError, match='one'):
        model.loss([clip, clip[:, :, :2]])
    with pytest.raises(TypeError, match='list of views'):
        model.loss(clip)


# ---------------------------------------------------------- distributed
def _dist_worker(rank: int, port: int, cfg_dict: dict, out: str) -> None:
    init_default_scope('mmaction')
    cfg = Config(cfg_dict)
    cfg.launcher = 'pytorch'
    # During the local warm-up its projections get no gradient.
    cfg.model_wrapper_cfg = dict(
        type='MMDistributedDataParallel', find_unused_parameters=True)
    with gloo_rank(rank, 2, port):
        runner = Runner.from_cfg(cfg)
        assert get_world_size() == 2
        runner.train()
    if rank == 0:
        torch.save(_state(runner.model.module), out)


def test_two_gloo_ranks_match_one_process(videos, tmp_path):
    """2 ranks x 2 videos against 1 process x 4 videos, through the warm-up
    and two epochs with the local contrast (Sinkhorn sums, local negatives
    and valid-pair counts span the ranks; the queue holds each rank's
    codes, so it stays out of this run)."""
    def cfg(name, batch_size):
        config = runner_cfg(videos, str(tmp_path / name), max_epochs=3,
                            batch_size=batch_size, deterministic=True)
        config.model.head.queue_len = 0
        return config

    single = Runner.from_cfg(cfg('one', 4))
    single.train()
    expected = _state(single.model)
    out = str(tmp_path / 'two.pth')
    mp.start_processes(
        _dist_worker,
        args=(free_port(), cfg('two', 2).to_dict(), out),
        nprocs=2,
        start_method='spawn')
    got = torch.load(out, weights_only=True)
    for key, value in expected.items():
        torch.testing.assert_close(
            got[key], value, rtol=1e-5, atol=1e-6,
            msg=lambda m: f'{key}: {m}')
