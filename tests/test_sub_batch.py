"""The lower level on a sub-batch (the algorithms' ``lower_batch``).

The rule (:mod:`mmbodvcl.functional.sub_batch`): reproducible, untouched by
the global random state, the same on every rank, and ``W`` ranks with ``B``
clips pick the clips one process with ``W B`` picks. Through MMEngine's
Runner on real decoded videos with ``BaseVideoSSL``'s own training step:
resume is bit-for-bit, and 2 gloo ranks x 2 clips equal 1 process x 4 clips
within 1e-5 relative (float32 summation order of the all-reduce), with the
lower level on half of the clips.
"""
import itertools
import os.path as osp
from argparse import Namespace
from typing import Dict, Optional

import pytest
import torch
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper
from mmengine.runner import Runner
from torch import Tensor, nn

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from mmbodvcl.functional.sub_batch import (sub_batch_indices,
                                           sub_batch_size)
from mmbodvcl.models.algorithms.base import BaseVideoSSL
from helpers import free_port, gloo_rank, make_video_dataset

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
FEAT = 6
_RUN_IDS = itertools.count()


@MODELS.register_module(force=True)
class TinyFrameEncoder(nn.Module):
    """``(N, 1, 3, T, H, W)`` -> per-frame features ``(N, T, FEAT)``; no
    BatchNorm, so every clip's features depend on that clip alone."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Sequential(
            nn.Conv3d(3, 4, 3, padding=1), nn.ReLU(),
            nn.MaxPool3d((1, 2, 2)),
            nn.Conv3d(4, 4, (3, 1, 1), padding=(1, 0, 0)))
        self.proj = nn.Linear(4, FEAT)

    def forward(self, inputs: Tensor) -> Tensor:
        frames = self.conv(inputs.flatten(0, 1)).mean(dim=(3, 4))
        return self.proj(frames.transpose(1, 2))


@MODELS.register_module(force=True)
class SubBatchVCL(BaseVideoSSL):
    """``BaseVideoSSL``'s training step (and so its ``lower_sub_batch``)
    with two losses that are means of per-clip terms (no BatchNorm, no
    negatives across clips): 2 ranks x B clips then equal 1 process x 2B
    exactly when both levels see the same clips."""
    has_lower_loss = True

    def __init__(self,
                 lower_batch=None,
                 lower_batch_seed: int = 0,
                 data_preprocessor: Optional[dict] = None) -> None:
        super().__init__(
            backbone=dict(type='TinyFrameEncoder'),
            decoupler=dict(type='UnifiedEmbedding'),
            data_preprocessor=data_preprocessor)
        self.head = nn.Linear(FEAT, FEAT)
        self.lower_batch = lower_batch
        self.lower_batch_seed = lower_batch_seed

    def loss_lower(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        z = self.backbone(inputs)
        pred = (z[:, 1:] - 0.9 * z[:, :-1]).pow(2).mean()
        spread = (z.pow(2).mean(dim=(1, 2)) - 1.0).pow(2).mean()
        return dict(loss_pred=pred + 0.1 * spread)

    def loss_upper(self, inputs: Tensor, data_samples) -> Dict[str, Tensor]:
        z = self.backbone(inputs)
        return dict(
            loss_static=(self.head(z.mean(1)) - 1.0).pow(2).mean(),
            loss_dynamic=self.head(z[:, 1:] - z[:, :-1]).pow(2).mean())


PIPELINE = [
    dict(type='DecordInit'),
    dict(type='SampleFrames', clip_len=4, frame_interval=2, num_clips=1,
         test_mode=True),
    dict(type='DecordDecode'),
    dict(type='Resize', scale=(16, 16), keep_ratio=False),
    dict(type='FormatShape', input_format='NCTHW'),
    dict(type='PackActionInputs'),
]


pytestmark = pytest.mark.usefixtures('mmaction_scope')


@pytest.fixture(scope='module')
def videos(tmp_path_factory) -> Dict[str, str]:
    root = str(tmp_path_factory.mktemp('videos'))
    ann = make_video_dataset(
        root, num_videos=8, num_frames=12, size=(32, 32), seed=5)
    return dict(ann=ann, root=root)


def _model_cfg(**kwargs) -> dict:
    return dict(
        type='SubBatchVCL',
        data_preprocessor=dict(
            type='ActionDataPreprocessor', mean=[128.0] * 3,
            std=[64.0] * 3, format_shape='NCTHW'),
        **kwargs)


def _cfg(videos: Dict[str, str], work_dir: str, batch_size: int = 4,
         max_epochs: int = 1, method: str = 'itd_fd',
         **model_kwargs) -> Config:
    return Config(dict(
        default_scope='mmaction',
        work_dir=work_dir,
        experiment_name=osp.basename(osp.normpath(work_dir)) + '_'
        + str(next(_RUN_IDS)),
        model=_model_cfg(**model_kwargs),
        train_dataloader=dict(
            batch_size=batch_size,
            num_workers=0,
            sampler=dict(type='DefaultSampler', shuffle=True),
            dataset=dict(
                type='VideoDataset', ann_file=videos['ann'],
                data_prefix=dict(video=videos['root']), pipeline=PIPELINE)),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(
            type='BiLevelOptimWrapper',
            constructor='BiLevelOptimWrapperConstructor',
            optimizer=dict(type='SGD', lr=0.05, momentum=0.9),
            hypergrad=dict(type=method, lower_lr=0.05)),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        log_level='WARNING'))


def _state(model: nn.Module) -> Dict[str, Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# ------------------------------------------------------------- the rule
def test_the_choice_is_reproducible_and_leaves_the_random_state():
    rng = torch.get_rng_state()
    first = [sub_batch_indices(8, 0.25, 3, it) for it in range(20)]
    assert torch.equal(torch.get_rng_state(), rng)
    torch.manual_seed(123)  # the global stream plays no part
    again = [sub_batch_indices(8, 0.25, 3, it) for it in range(20)]
    for a, b in zip(first, again):
        assert torch.equal(a, b)
    for index in first:
        assert index.dtype == torch.int64 and len(index) == 2
        assert len(set(index.tolist())) == 2
        assert all(0 <= i < 8 for i in index.tolist())
    # Every window of the batch is drawn (four of them here).
    assert {tuple(i.tolist()) for i in first} == {(0, 1), (2, 3), (4, 5),
                                                  (6, 7)}


@pytest.mark.parametrize('world_size', [2, 3, 4])
def test_ranks_pick_what_one_process_picks(world_size):
    """Rank r's position i is global position i * W + r (DefaultSampler
    deals the global batch out round-robin)."""
    for batch, seed, iteration in itertools.product((2, 5, 8), (0, 7),
                                                    range(6)):
        for count in range(1, batch + 1):
            local = sub_batch_indices(batch, count, seed, iteration)
            on_ranks = {i * world_size + r for i in local.tolist()
                        for r in range(world_size)}
            one = sub_batch_indices(batch * world_size, count * world_size,
                                    seed, iteration)
            assert on_ranks == set(one.tolist()), (batch, count, iteration)
    for fraction in (0.25, 0.5, 1.0):  # f B whole: the same clips
        local = sub_batch_indices(4, fraction, 1, 9)
        one = sub_batch_indices(4 * world_size, fraction, 1, 9)
        assert {i * world_size + r for i in local.tolist()
                for r in range(world_size)} == set(one.tolist())


@pytest.mark.parametrize('value, error, words', [
    (0.0, ValueError, 'in (0, 1], got 0.0'),
    (1.5, ValueError, 'in (0, 1], got 1.5'),
    (-0.25, ValueError, 'in (0, 1], got -0.25'),
    (0, ValueError, 'must be >= 1, got 0'),
    (5, ValueError, 'lower_batch=5 clips is more than the batch of 4'),
    (True, TypeError, 'got True'),
    ('half', TypeError, "got 'half'"),
])
def test_bad_sub_batches_are_named(value, error, words):
    with pytest.raises(error, match='lower_batch') as info:
        sub_batch_size(4, value)
    assert words in str(info.value)


def test_sizes_and_the_decoupler_minimum():
    assert sub_batch_size(8, 0.25) == 2
    assert sub_batch_size(8, 3) == 3
    assert sub_batch_size(2, 0.25) == 1  # never empty
    assert sub_batch_size(8, 1.0) == 8
    with pytest.raises(ValueError, match='needs at least 3 clips'):
        sub_batch_size(8, 0.25, min_clips=3)


def _batch(videos, batch_size=4):
    loader = Runner.build_dataloader(
        _cfg(videos, '/tmp/unused', batch_size).train_dataloader.to_dict())
    return next(iter(loader))


def _wrapper(model):
    return build_optim_wrapper(model, dict(
        type='BiLevelOptimWrapper',
        constructor='BiLevelOptimWrapperConstructor',
        optimizer=dict(type='SGD', lr=0.05),
        hypergrad=dict(type='itd_fd', lower_lr=0.05)))


def _model(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(_model_cfg(**kwargs)).train()


def test_the_lower_level_sees_the_chosen_clips(videos):
    data = _batch(videos)
    full, whole, half = (_model(), _model(lower_batch=1.0),
                         _model(lower_batch=0.5, lower_batch_seed=2))
    processed = half.data_preprocessor(data, True)
    chosen = sub_batch_indices(4, 0.5, 2, iteration=0)
    expected = half.loss_lower(processed['inputs'][chosen], None)
    log_full = full.train_step(data, _wrapper(full))
    whole.train_step(data, _wrapper(whole))
    log_half = half.train_step(data, _wrapper(half))
    # f = 1 is the full batch, bit for bit.
    for a, b in zip(full.parameters(), whole.parameters()):
        assert torch.equal(a, b)
    assert log_full['lower_batch_size'].item() == 4.0
    assert log_half['lower_batch_size'].item() == 2.0
    # L_pred at theta (the first lower evaluation) on the chosen clips;
    # the upper loss on all four.
    assert torch.equal(log_half['loss_pred'],
                       expected['loss_pred'].detach())
    assert log_half['loss_pred'] != log_full['loss_pred']


def test_a_sub_batch_below_the_decoupler_minimum_is_refused(videos):
    model = _model(lower_batch=0.5)
    model.decoupler.min_lower_clips = 3  # as a decoupler would declare it
    with pytest.raises(ValueError, match=r"SubBatchVCL: lower_batch=0.5 "
                       r"gives 2 of 4 clips .* at least 3 clips"):
        model.train_step(_batch(videos), _wrapper(model))


def test_vcl_config_errors():
    from mmbodvcl.models.algorithms.vsimclr import VSimCLR  # noqa: F401
    cfg = dict(
        type='VSimCLR',
        backbone=dict(type='ResNet3dSlowOnly', depth=18, base_channels=8,
                      pretrained=None, pretrained2d=False),
        neck=dict(type='KoopmanNeck', in_channels=64, hid_channels=16,
                  out_channels=8, num_layers=2),
        head=dict(type='MultiViewContrastiveHead'))
    with pytest.raises(ValueError, match=r'VSimCLR: lower_batch as a '
                       r'fraction of the batch must be in \(0, 1\], got 2.0'):
        MODELS.build(dict(cfg, decouple=True, lower_batch=2.0))
    with pytest.raises(ValueError, match='lower_batch=0.5 needs a decoupler '
                       'with a lower-level loss, but UnifiedEmbedding'):
        MODELS.build(dict(cfg, lower_batch=0.5))
    model = MODELS.build(dict(cfg, decouple=True, lower_batch=0.25))
    assert model.lower_batch == 0.25


# ------------------------------------------------- through the Runner
def test_resume_is_exact_on_a_sub_batch(videos, tmp_path):
    kwargs = dict(lower_batch=0.5, lower_batch_seed=4, max_epochs=2)
    # The windows of iterations 2, 3 differ from those of 0, 1, so a
    # counter restarting at 0 on resume would change the result.
    windows = [sub_batch_indices(4, 0.5, 4, it).tolist() for it in range(4)]
    assert windows[:2] != windows[2:]
    straight = Runner.from_cfg(_cfg(videos, str(tmp_path / 'a'), **kwargs))
    straight.train()
    cut = _cfg(videos, str(tmp_path / 'b'), **kwargs)
    cut.train_cfg.max_epochs = 1
    Runner.from_cfg(cut).train()
    resumed_cfg = _cfg(videos, str(tmp_path / 'b'), **kwargs)
    resumed_cfg.resume = True
    resumed = Runner.from_cfg(resumed_cfg)
    resumed.train()
    expected, got = _state(straight.model), _state(resumed.model)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    sizes = resumed.message_hub.log_scalars['train/lower_batch_size']
    assert set(sizes.data[0].tolist()) == {2.0}


def _dist_worker(rank: int, world_size: int, port: int, cfg_dict: dict,
                 out: str) -> None:
    cfg = Config(cfg_dict)
    cfg.launcher = 'pytorch'
    cfg.model_wrapper_cfg = dict(type='ReducerFreeDataParallel')
    with gloo_rank(rank, world_size, port):
        runner = Runner.from_cfg(cfg)
        runner.train()
    if rank == 0:
        torch.save(_state(runner.model.module), out)


def test_two_gloo_ranks_match_one_process_on_a_sub_batch(videos, tmp_path):
    """ITD-RMAD (exact: no finite difference to magnify the all-reduce's
    rounding), lower level on half of the clips: 2 ranks x 2 videos (one
    clip each in the lower level) against 1 process x 4 videos (two)."""
    kwargs = dict(lower_batch=0.5, lower_batch_seed=1, max_epochs=2,
                  method='itd_rmad')
    single = Runner.from_cfg(
        _cfg(videos, str(tmp_path / 'one'), batch_size=4, **kwargs))
    single.train()
    out = str(tmp_path / 'two.pth')
    mp.start_processes(
        _dist_worker,
        args=(2, free_port(),
              _cfg(videos, str(tmp_path / 'two'), batch_size=2,
                   **kwargs).to_dict(), out),
        nprocs=2, start_method='spawn')
    got, want = torch.load(out, weights_only=True), _state(single.model)
    for key, value in want.items():
        torch.testing.assert_close(got[key], value, rtol=1e-5, atol=1e-6,
                                   msg=lambda m: f'{key}: {m}')
    # And the sub-batch matters: the full-batch run ends elsewhere.
    full = Runner.from_cfg(_cfg(videos, str(tmp_path / 'full'),
                                max_epochs=2, method='itd_rmad'))
    full.train()
    assert not torch.allclose(_state(full.model)['head.weight'],
                              want['head.weight'], rtol=1e-4)


# ------------------------------------------------------------ benchmark
def test_bench_rows_for_each_fraction(tmp_path, monkeypatch):
    # As under 'python benchmarks/bench_bilevel.py': its neighbours import.
    monkeypatch.syspath_prepend(osp.join(ROOT, 'benchmarks'))
    import bench_bilevel
    rows = list(bench_bilevel.configurations(['baseline', 'itd_fd'],
                                             [1.0, 0.5, 0.25]))
    assert rows == [('baseline', 1.0), ('itd_fd', 1.0), ('itd_fd', 0.5),
                    ('itd_fd', 0.25)]
    make_video_dataset(str(tmp_path), num_videos=4, num_frames=12,
                       size=(32, 32))
    args = Namespace(videos=str(tmp_path), batch_size=4, size=32,
                     clip_len=4, slow_r50=False, tiny=False, device='cpu',
                     k=1,
                     iterations=2, warmup=0, iters=1,
                     methods=['baseline', 'itd_fd', 'itd_fd+recompute'],
                     lower_batch=[1.0, 0.25])
    result = bench_bilevel.timing_worker(args)
    assert list(result) == ['baseline', 'itd_fd', 'itd_fd f=0.25',
                            'itd_fd+recompute',
                            'itd_fd+recompute f=0.25']
    for name, lower_passes in (('itd_fd', 2), ('itd_fd f=0.25', 2),
                               ('itd_fd+recompute f=0.25', 3)):
        row = result[name]
        assert row['passes_model_s'] == pytest.approx(
            lower_passes * row['loss_lower_s'] + row['loss_upper_s'])
        assert row['iter_s'] > 0


def test_bench_memory_workers_measure_live_memory(monkeypatch):
    monkeypatch.syspath_prepend(osp.join(ROOT, 'benchmarks'))
    import bench_bilevel
    monkeypatch.delenv('MALLOC_MMAP_THRESHOLD_', raising=False)
    live = Namespace(default_allocator=False)
    assert bench_bilevel._worker_env(
        live, 'memory')['MALLOC_MMAP_THRESHOLD_'] == '131072'
    assert 'MALLOC_MMAP_THRESHOLD_' not in bench_bilevel._worker_env(
        live, 'timing')
    assert 'MALLOC_MMAP_THRESHOLD_' not in bench_bilevel._worker_env(
        Namespace(default_allocator=True), 'memory')
    # a threshold the user set wins
    monkeypatch.setenv('MALLOC_MMAP_THRESHOLD_', '65536')
    assert bench_bilevel._worker_env(
        live, 'memory')['MALLOC_MMAP_THRESHOLD_'] == '65536'


def test_itd_fd_recompute_gives_the_same_hypergradient(videos):
    """``recompute=True`` drops the lower steps' gradients (memory) and
    computes them again: the same hypergradient, one more lower pass per
    step."""
    from mmbodvcl.engine import build_hypergradient
    from mmbodvcl.functional.hypergrad import BilevelProblem
    from mmbodvcl.models.algorithms.stateless import (StatelessLoss,
                                                      trainable_parameters)
    model = _model()
    data = model.data_preprocessor(_batch(videos), True)
    named = trainable_parameters(model)
    names = [name for name, _ in named]
    results = {}
    for recompute in (False, True):
        method = build_hypergradient(dict(type='itd_fd', inner_steps=2,
                                          recompute=recompute))
        lower = StatelessLoss(model, model.loss_lower, data, names, False)
        upper = StatelessLoss(model, model.loss_upper, data, names, True)
        results[recompute] = method(
            [p for _, p in named],
            BilevelProblem(lambda t: lower(t)[0], lambda t: upper(t)[0],
                           0.05))
    kept, again = results[False], results[True]
    assert kept.passes['lower_backward'] == 4
    assert again.passes['lower_backward'] == 6
    for a, b in zip(kept.hypergrad, again.hypergrad):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)
