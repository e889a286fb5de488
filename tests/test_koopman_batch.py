"""The batch Koopman operator (one M x M operator per batch), its spectral
and orthogonality terms, the split it gives on features with known ground
truth, and KoopmanDecoupler(operator='batch')."""
import os
import os.path as osp
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmbodvcl.functional import koopman_batch as kb
from helpers import free_port, gloo_rank, load_script

BENCHMARK = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'benchmarks',
    'bench_split_recovery.py')


def _features(clips=6, dim=4, frames=5, seed=0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(clips, dim, frames, generator=generator,
                       dtype=torch.float64)


def _hand_ridge_fit(z: np.ndarray, ridge: float) -> np.ndarray:
    """``K`` minimising ``||Y - K X||^2 + lam ||K||^2`` over the pairs of
    every clip, by the normal equations of the stacked pairs."""
    prev = np.concatenate([clip[:, :-1] for clip in z], axis=1)
    nxt = np.concatenate([clip[:, 1:] for clip in z], axis=1)
    dim = z.shape[1]
    lam = ridge * np.trace(prev @ prev.T) / dim
    return np.linalg.solve(prev @ prev.T + lam * np.eye(dim),
                           prev @ nxt.T).T


# --------------------------------------------------------------- the fit
def test_batch_operator_is_the_least_squares_fit_of_all_pairs():
    z = _features()
    for ridge in (1e-3, 1e-12):
        moments = kb.batch_moments(z)
        fitted = kb.fit_batch_operator(moments, ridge)
        np.testing.assert_allclose(fitted.numpy(),
                                   _hand_ridge_fit(z.numpy(), ridge),
                                   rtol=1e-9, atol=1e-10)
    # with a negligible ridge: NumPy's least squares on the stacked pairs
    prev = torch.cat(list(z[..., :-1]), dim=1).numpy()
    nxt = torch.cat(list(z[..., 1:]), dim=1).numpy()
    lstsq = np.linalg.lstsq(prev.T, nxt.T, rcond=None)[0].T
    np.testing.assert_allclose(fitted.numpy(), lstsq, rtol=1e-8, atol=1e-9)
    assert moments.pairs.item() == 6 * 4


def test_batch_operator_never_pairs_frames_of_two_clips():
    z = _features()
    reference = kb.fit_batch_operator(kb.batch_moments(z), 1e-3)
    permuted = kb.fit_batch_operator(
        kb.batch_moments(z[torch.randperm(6)]), 1e-3)
    as_views = kb.fit_batch_operator(kb.batch_moments([z[:3], z[3:]]), 1e-3)
    torch.testing.assert_close(permuted, reference, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(as_views, reference, rtol=1e-10, atol=1e-12)
    # one long sequence of all clips adds the 5 pairs that cross clips
    glued = torch.cat(list(z), dim=-1)[None]
    crossing = kb.batch_moments(glued)
    assert crossing.pairs.item() == 6 * 4 + 5
    assert not torch.allclose(kb.fit_batch_operator(crossing, 1e-3),
                              reference, atol=1e-3)


def test_too_few_pairs_are_refused():
    with pytest.raises(ValueError, match='at least M = 8'):
        kb.fit_batch_koopman(torch.randn(1, 8, 5))  # 4 pairs in 8 dims
    # 2 views of 3 frames: 4 pairs a clip, so 2 clips for M = 8
    with pytest.raises(ValueError, match='at 4 pairs a clip that is at '
                       'least 2 clips per batch'):
        kb.fit_batch_koopman([torch.randn(1, 8, 3), torch.randn(1, 8, 3)])
    with pytest.raises(ValueError, match="operator='per_clip'"):
        kb.batch_koopman_split(torch.randn(2, 8, 3))


@pytest.mark.parametrize('kwargs, match', [
    (dict(operator='global'), 'operator'),
    (dict(static_size=-1), 'static_size'),
    (dict(static_size=2.0), 'static_size'),
    (dict(spectral_static=-1.0), 'spectral_static'),
    (dict(spectral_bound=0.0), 'spectral_bound'),
    (dict(batch_ridge=0.0), 'batch_ridge'),
])
def test_bad_batch_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kb.check_batch_options(**kwargs)


# --------------------------------------------------------------- the split
def _known_operator_features(clips=40, seed=0):
    """Features of one known operator with eigenvalues 1, 1 (static) and
    0.9 exp(+-0.8i), -0.5 (dynamic) in M = 5, and the static projector."""
    rng = np.random.default_rng(seed)
    block = np.zeros((5, 5))
    block[0, 0] = block[1, 1] = 1.0
    rot = 0.9 * np.array([[np.cos(0.8), -np.sin(0.8)],
                          [np.sin(0.8), np.cos(0.8)]])
    block[2:4, 2:4] = rot
    block[4, 4] = -0.5
    basis = np.eye(5) + 0.3 * rng.standard_normal((5, 5))
    system = basis @ block @ np.linalg.inv(basis)
    projector = basis @ np.diag([1., 1., 0., 0., 0.]) @ np.linalg.inv(basis)
    state = rng.standard_normal((clips, 5))
    frames = []
    for _ in range(8):
        frames.append(state)
        state = state @ system.T
    return torch.from_numpy(np.stack(frames, -1)), system, projector


def test_batch_split_is_the_spectral_projection_of_the_shared_operator():
    z, system, projector = _known_operator_features()
    fit = kb.fit_batch_koopman(z, static_size=2, ridge=1e-12)
    np.testing.assert_allclose(fit.operator.numpy(), system, atol=1e-6)
    np.testing.assert_allclose(fit.projector.numpy(), projector, atol=1e-5)
    split = kb.batch_koopman_split(z.float(), static_size=2, ridge=1e-12)
    unified = z.mean(-1)
    torch.testing.assert_close(split.static.double(),
                               unified @ torch.from_numpy(projector).T,
                               atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(split.static + split.dynamic, split.unified)
    assert split.eigvals.shape == split.static_mask.shape == (40, 5)
    assert (split.num_static == 2).all()
    # the xi disc selects the same modes here
    disc = kb.batch_koopman_split(z.float(), xi=0.1, static_size=0,
                                  ridge=1e-12)
    torch.testing.assert_close(disc.static, split.static)


def test_conjugate_pairs_stay_together_and_the_projector_is_real():
    z, _, _ = _known_operator_features()
    fit = kb.fit_batch_koopman(z, static_size=3, ridge=1e-12)
    # the third-nearest eigenvalue is one of a conjugate pair: both are in
    assert fit.static_mask.sum().item() == 4
    torch.testing.assert_close(fit.projector @ fit.projector, fit.projector,
                               atol=1e-8, rtol=1e-8)


def test_split_alone_recovers_the_ground_truth():
    """The default batch split keeps >= 0.9 of the static energy in Z_A and
    sends >= 0.9 of the dynamic energy to Z_M, on clean features and on
    noisy features whose clips rotate at their own speeds."""
    bench = load_script(BENCHMARK)
    for noise, jitter in ((0.05, 0.0), (0.2, 0.5)):
        for seed in (0, 1):
            parts = bench.make_features(32, 32, 8, 4, noise, seed, jitter)
            (static, dynamic), _ = bench.batch_shares(parts['z'], parts)
            assert static >= 0.9 and dynamic >= 0.9, (noise, seed)


def test_benchmark_runs_tiny():
    rows = load_script(BENCHMARK).main(['--tiny', '--clips', '16'])
    assert {row['training'] for row in rows} == {'none', 'pred', 'pred+spec'}
    assert all(torch.isfinite(row['bands']).all() for row in rows)


# --------------------------------------------------- spectral and orth terms
def test_spectral_terms_on_a_hand_built_operator():
    # eigenvalues 1.05, 0.9 (static: the two nearest 1), 0.8 exp(+-0.2i)
    # (|lambda - 1| = 0.2498), -0.5
    rot = 0.8 * torch.tensor([[np.cos(0.2), -np.sin(0.2)],
                              [np.sin(0.2), np.cos(0.2)]])
    operator = torch.block_diag(torch.tensor([[1.05]]), torch.tensor([[0.9]]),
                                rot, torch.tensor([[-0.5]])).double()
    operator.requires_grad_()
    eigvals = torch.linalg.eigvals(operator)
    mask = kb.static_mask(eigvals.detach(), 0.0, 2)
    pulled, pushed = kb.spectral_terms(eigvals, mask, bound=0.3)
    distance = abs(0.8 * np.exp(0.2j) - 1)
    assert pulled.item() == pytest.approx((0.05**2 + 0.1**2) / 2)
    assert pushed.item() == pytest.approx(2 * (0.3 - distance)**2 / 3)
    (pulled + pushed).backward()
    grad = operator.grad
    # diagonal entries: d/d lambda of the terms; static pulled towards 1
    assert grad[0, 0].item() == pytest.approx(2 * 0.05 / 2)
    assert grad[1, 1].item() == pytest.approx(-2 * 0.1 / 2)
    assert grad[4, 4].item() == pytest.approx(0, abs=1e-12)  # 1.5 > bound
    # a step against the gradient moves the rotation away from 1
    step = torch.linalg.eigvals(operator.detach() - 0.1 * grad)
    rotation = step[step.imag.abs() > 1e-6]
    assert len(rotation) == 2 and ((rotation - 1).abs() > distance).all()


def test_orthogonality_reaches_zero_for_an_orthogonal_batch_operator():
    z, _, _ = _known_operator_features()
    assert kb.orthogonality(torch.linalg.qr(torch.randn(6, 6))[0]).item() \
        == pytest.approx(0, abs=1e-10)
    angle = 0.7
    rotation = torch.tensor([[np.cos(angle), -np.sin(angle)],
                             [np.sin(angle), np.cos(angle)]])
    state = torch.randn(20, 2, dtype=torch.float64)
    frames = [state]
    for _ in range(7):
        frames.append(frames[-1] @ rotation.double().T)
    loss = kb.batch_prediction_loss(torch.stack(frames, -1), ridge=1e-12)
    assert loss.orthogonality.item() < 1e-8 and loss.mse.item() < 1e-8
    assert kb.batch_prediction_loss(z).orthogonality.item() > 0.1


def test_prediction_loss_from_the_sums_equals_the_residual():
    z = _features(clips=10, dim=4, frames=6)
    loss = kb.batch_prediction_loss(z, nu=0.0, ridge=1e-3)
    operator = kb.fit_batch_operator(kb.batch_moments(z), 1e-3)
    residual = (z[..., 1:] - operator @ z[..., :-1]).square().sum()
    assert loss.mse.item() == pytest.approx(
        (residual / z[..., 1:].square().sum()).item(), rel=1e-5)


# ------------------------------------------------------------ degenerate
def _degenerate_batches():
    z = torch.randn(12, 8, 6, dtype=torch.float64)
    constant = z[..., :1].expand_as(z).clone()
    duplicated = z.repeat_interleave(2, -1)[..., :6].clone()
    rank_one = torch.randn(12, 8, 1).double() * torch.randn(12, 1, 6).double()
    return dict(constant=constant, duplicated=duplicated,
                zero=torch.zeros_like(z), rank_one=rank_one,
                tiny=1e-20 * z, mixed=torch.cat([constant[:6], z[6:]]))


@pytest.mark.parametrize('name', sorted(_degenerate_batches()))
def test_gradients_are_finite_on_degenerate_input(name):
    z = _degenerate_batches()[name].float().requires_grad_()
    weights = torch.randn(12, 8)
    split = kb.batch_koopman_split(z, static_size=2)
    loss = kb.batch_prediction_loss([z[:6], z[6:]], nu=1e-2,
                                    spectral_static=1.0,
                                    spectral_dynamic=1.0)
    total = (weights * split.static).sum() + (
        weights * split.dynamic).sum() + loss.loss
    total.backward()
    assert torch.isfinite(total)
    assert torch.isfinite(z.grad).all()
    assert z.grad.abs().max() < 1e6


def test_autocast_does_not_reach_the_fit():
    z = torch.randn(12, 8, 6)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        split = kb.batch_koopman_split(z)
        loss = kb.batch_prediction_loss(z, spectral_static=1.0)
    reference = kb.batch_koopman_split(z)
    assert split.static.dtype == torch.float32 == loss.loss.dtype
    torch.testing.assert_close(split.static, reference.static)


# ------------------------------------------------------- two ranks = one
def _ddp_batch():
    generator = torch.Generator().manual_seed(3)
    z = torch.randn(8, 6, 5, generator=generator)
    weights = torch.randn(8, 6, generator=generator)
    return z, weights


def _objectives(z, weights, distributed):
    split = kb.batch_koopman_split(z, static_size=2, distributed=distributed)
    upper = (weights * split.static).sum() + (
        weights * split.dynamic).square().sum()
    lower = kb.batch_prediction_loss(z, nu=1e-2, static_size=2,
                                     spectral_static=1.0,
                                     spectral_dynamic=1.0,
                                     distributed=distributed).loss
    return upper, lower


def _rank_worker(rank: int, world_size: int, port: int, out_dir: str):
    with gloo_rank(rank, world_size, port):
        dist.init_process_group('gloo')
        z, weights = _ddp_batch()
        rows = slice(rank * 4, (rank + 1) * 4)
        results = {}
        for level in ('upper', 'lower'):
            local = z[rows].clone().requires_grad_()
            upper, lower = _objectives(local, weights[rows], True)
            loss = upper if level == 'upper' else lower
            loss.backward()
            results[level] = (loss.detach(), local.grad)
    torch.save(results, os.path.join(out_dir, f'{rank}.pt'))


def test_two_gloo_ranks_equal_one_process():
    """Each rank fits the operator of the global batch: the lower-level loss
    is the same on every rank and equals one process's; the upper loss of
    each rank is that of its clips. The gradient each rank gets for its
    clips equals one process's gradient of the sum of the ranks' losses
    (which DDP then averages)."""
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_rank_worker, args=(2, free_port(), out_dir), nprocs=2)
        results = [torch.load(os.path.join(out_dir, f'{r}.pt'))
                   for r in range(2)]
    z, weights = _ddp_batch()
    # upper: sum of the per-rank losses, each on its clips, shared operator
    whole = z.clone().requires_grad_()
    split = kb.batch_koopman_split(whole, static_size=2)
    per_clip = (weights * split.static).sum(-1) + (
        weights * split.dynamic).square().sum(-1)
    per_clip.sum().backward()
    for rank in range(2):
        loss, grad = results[rank]['upper']
        assert loss.item() == pytest.approx(
            per_clip[rank * 4:(rank + 1) * 4].sum().item(), rel=1e-5)
        torch.testing.assert_close(grad, whole.grad[rank * 4:(rank + 1) * 4],
                                   rtol=1e-4, atol=1e-5)
    # lower: one global loss on every rank
    whole = z.clone().requires_grad_()
    _, lower = _objectives(whole, weights, False)
    (2 * lower).backward()
    for rank in range(2):
        loss, grad = results[rank]['lower']
        assert loss.item() == pytest.approx(lower.item(), rel=1e-5)
        torch.testing.assert_close(grad, whole.grad[rank * 4:(rank + 1) * 4],
                                   rtol=1e-4, atol=1e-5)


# ------------------------------------------------------------ the decoupler
def _decoupler(**kwargs):
    import mmbodvcl  # noqa: F401  (registration)
    from mmaction.registry import MODELS
    cfg = dict(type='KoopmanDecoupler', operator='batch', static_size=2,
               spectral_static=1.0, spectral_dynamic=1.0)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def _identity(clips):
    return clips


def test_batch_decoupler_splits_with_one_operator_and_logs_its_spectrum():
    z, _, _ = _known_operator_features()
    views = [z[:20].float(), z[20:].float()]
    decoupler = _decoupler()
    out = decoupler(_identity, views, with_lower_loss=True)
    assert set(out.parts) == {'static', 'dynamic'}
    assert set(out.statistics) == set(decoupler.statistics)
    assert out.statistics['num_static_modes'] == 2
    assert out.statistics['num_dynamic_modes'] == 3
    assert out.statistics['eig_static_dist'] < 1e-3
    assert set(out.lower_losses) == {'loss_pred', 'pred_mse', 'pred_orth',
                                     'pred_spec_static', 'pred_spec_dynamic'}
    torch.testing.assert_close(out.parts['static'] + out.parts['dynamic'],
                               torch.stack(views).mean(-1))
    # the shared operator: splitting the views together or per call of
    # split() on all clips gives the same parts
    together = decoupler.split(torch.cat(views))
    torch.testing.assert_close(together.static.reshape(2, 20, 5),
                               out.parts['static'])
    lower = decoupler.lower_loss(_identity, views)
    torch.testing.assert_close(lower['loss_pred'],
                               out.lower_losses['loss_pred'])


def test_batch_decoupler_splits_one_view_in_eval_mode():
    z, _, projector = _known_operator_features()
    decoupler = _decoupler().eval()
    split = decoupler.split(z.float())
    torch.testing.assert_close(split.static.double(),
                               z.mean(-1) @ torch.from_numpy(projector).T,
                               atol=1e-3, rtol=1e-3)
    with pytest.raises(ValueError, match='at least M = 5'):
        decoupler.split(z[:1, :, :3].float())  # 2 pairs in 5 dims


def _lower_losses(cfg, z):
    decoupler = _decoupler(**cfg)
    return decoupler.lower_loss(_identity, [z, z.flip(-1)])


def test_per_clip_decoupler_takes_the_spectral_term():
    z = torch.randn(4, 8, 8)
    plain = _lower_losses(dict(operator='per_clip', spectral_static=0.0,
                               spectral_dynamic=0.0), z)
    spectral = _lower_losses(
        dict(operator='per_clip', spectral_static=1.0, spectral_dynamic=1.0,
             min_static=1), z)
    assert 'pred_spec_static' not in plain
    assert spectral['loss_pred'] > plain['loss_pred']
    assert torch.isfinite(spectral['loss_pred'])


@pytest.mark.parametrize('kwargs, match', [
    (dict(operator='global'), 'operator'),
    (dict(split='eigenvalue_weighted'), 'split'),
    (dict(spectral_bound=2.5), 'spectral_bound'),
    (dict(static_size=-2), 'static_size'),
])
def test_bad_batch_decoupler_config_is_refused_at_build(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _decoupler(**kwargs)
