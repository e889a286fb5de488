"""mmbodvcl.functional.koopman against NumPy/SciPy on known linear systems."""
from typing import List, Sequence, Tuple

import numpy as np
import pytest
import scipy.linalg
import torch

from mmbodvcl.functional import koopman as kp

# two static modes (|lambda - 1| < xi = 0.1) and four dynamic ones; closer
# static clusters (e.g. 1 and 0.98 exp(+-0.05i)) leave singular values of X
# below 1e-4 s_max after T - 1 = 7 steps, i.e. at float32 noise level
STATIC = (1.0, 1.08)
DYNAMIC = (0.3, 0.7 * np.exp(1.2j), -0.8)


def _real_block(eigvals: Sequence[complex]) -> np.ndarray:
    """Real block-diagonal matrix with the given eigenvalues (a complex value
    stands for its conjugate pair, a 2x2 rotation-scaling block)."""
    blocks = []
    for value in eigvals:
        if np.iscomplex(value):
            blocks.append(np.array([[value.real, -value.imag],
                                    [value.imag, value.real]]))
        else:
            blocks.append(np.array([[float(np.real(value))]]))
    return scipy.linalg.block_diag(*blocks)


def _linear_system(num_videos: int = 4,
                   dim: int = 16,
                   num_frames: int = 8,
                   static: Sequence[complex] = STATIC,
                   dynamic: Sequence[complex] = DYNAMIC,
                   shift: int = 0,
                   seed: int = 0):
    """Features ``z_t = E P D^t P^-1 x_0`` of a known linear system.

    Returns float64 features ``(B, M, T)`` (frames ``shift .. shift+T-1``), the
    static and dynamic bases ``(B, M, k)`` and the true static projector
    ``(B, M, M)`` (zero on the orthogonal complement of ``E``).
    """
    rng = np.random.default_rng(seed)
    block = scipy.linalg.block_diag(_real_block(static),
                                    _real_block(dynamic))
    num_static = _real_block(static).shape[0]
    state = block.shape[0]
    feats, static_bases, dynamic_bases, projectors = [], [], [], []
    for _ in range(num_videos):
        embed = np.linalg.qr(rng.standard_normal((dim, state)))[0]
        mixing = np.eye(state) + 0.3 * rng.standard_normal((state, state))
        system = mixing @ block @ np.linalg.inv(mixing)
        x = rng.standard_normal(state)
        for _ in range(shift):
            x = system @ x
        frames = []
        for _ in range(num_frames):
            frames.append(embed @ x)
            x = system @ x
        feats.append(np.stack(frames, axis=1))
        modes = embed @ mixing
        static_bases.append(modes[:, :num_static])
        dynamic_bases.append(modes[:, num_static:])
        select = np.diag([1.0] * num_static + [0.0] * (state - num_static))
        projectors.append(modes @ select @ np.linalg.inv(mixing) @ embed.T)
    return (torch.tensor(np.stack(feats), dtype=torch.float64),
            np.stack(static_bases), np.stack(dynamic_bases),
            np.stack(projectors))


def _residual_outside(vectors: np.ndarray, bases: np.ndarray) -> float:
    """Largest relative distance of ``vectors[b]`` from ``span(bases[b])``."""
    worst = 0.0
    for vector, basis in zip(vectors, bases):
        coef = np.linalg.lstsq(basis, vector, rcond=None)[0]
        distance = np.linalg.norm(basis @ coef - vector)
        worst = max(worst, distance / max(np.linalg.norm(vector), 1e-12))
    return worst


def _static_operator(dmd: kp.ReducedDMD, dim: int, split: str) -> np.ndarray:
    """T_A of every clip as an explicit ``(B, M, M)`` matrix (tests only)."""
    batch = dmd.prev.shape[0]
    eye = torch.eye(dim, dtype=torch.float64).expand(batch, dim, dim)
    return kp.apply_static_operator(dmd, eye, 0.1, split).numpy()


def _full_koopman(z: torch.Tensor) -> np.ndarray:
    z64 = z.double().numpy()
    return np.stack([y @ np.linalg.pinv(x) for x, y in
                     zip(z64[..., :-1], z64[..., 1:])])


def test_split_recovers_static_and_dynamic_subspaces():
    z, static_bases, dynamic_bases, projectors = _linear_system()
    result = kp.koopman_split(z)
    static, dynamic = result.static.double().numpy(), result.dynamic.numpy()
    unified = z.double().mean(-1).numpy()
    assert _residual_outside(static, static_bases) < 1e-4
    assert _residual_outside(dynamic, dynamic_bases) < 1e-4
    expected = np.einsum('bij,bj->bi', projectors, unified)
    np.testing.assert_allclose(static, expected, atol=1e-4 * np.abs(
        expected).max())
    np.testing.assert_allclose(result.static + result.dynamic,
                               result.unified, atol=1e-6)
    assert result.num_static.tolist() == [2] * z.shape[0]
    assert result.static_mask.shape == result.eigvals.shape == (4, 7)


def test_eigenvalues_match_scipy_on_nonzero_part():
    z, *_ = _linear_system(seed=1)
    result = kp.koopman_split(z)
    for video, koopman in enumerate(_full_koopman(z)):
        full = scipy.linalg.eigvals(koopman)
        full = full[np.abs(full) > 1e-6]
        ours = result.eigvals[video].numpy().astype(np.complex128)
        ours = ours[np.abs(ours) > 1e-6]
        assert len(ours) == len(full) == 6
        assert np.abs(full - 1).min() < 1e-6
        np.testing.assert_allclose(np.sort_complex(ours),
                                   np.sort_complex(full), atol=1e-4)


def test_static_operator_is_idempotent_and_annihilates_nullspace():
    z, *_ = _linear_system(seed=2)
    dmd = kp.reduced_dmd(z)
    operator = _static_operator(dmd, z.shape[1], 'projector')
    np.testing.assert_allclose(operator @ operator, operator, atol=1e-8)
    # vectors orthogonal to the previous frames are in the nullspace of K
    prev = z[..., :-1].double().numpy()
    for video in range(z.shape[0]):
        null = scipy.linalg.null_space(prev[video].T)
        assert null.shape[1] == z.shape[1] - 6
        assert np.abs(operator[video] @ null).max() < 1e-8


def test_projector_equals_full_eigendecomposition_when_k_is_invertible():
    # M = T - 1: K is M x M of full rank, so its eigenvectors are well posed
    z, *_ = _linear_system(dim=5, num_frames=7, seed=3,
                           static=(0.98 * np.exp(0.05j), ),
                           dynamic=(0.5, 0.7 * np.exp(1.2j)))
    dmd = kp.reduced_dmd(z)
    for split in kp.SPLITS:
        operator = _static_operator(dmd, 5, split)
        for video, koopman in enumerate(_full_koopman(z)):
            eigvals, modes = scipy.linalg.eig(koopman)
            mask = np.abs(eigvals - 1) < 0.1
            weights = mask * eigvals if split == 'eigenvalue_weighted' else (
                mask.astype(float))
            expected = (modes @ np.diag(weights) @ np.linalg.inv(modes)).real
            np.testing.assert_allclose(operator[video], expected, atol=1e-7)


def test_reduced_and_full_splits_agree():
    z, *_ = _linear_system(seed=4)
    for split in kp.SPLITS:
        reduced = kp.koopman_split(z, split=split)
        full = kp.full_koopman_split(z, split=split)
        for name in ('static', 'dynamic'):
            np.testing.assert_allclose(getattr(reduced, name),
                                       getattr(full, name), atol=1e-4)


def test_eigenvalue_weighted_split_sums_to_k_times_mean():
    z, *_ = _linear_system(seed=5, static=(1.05, ))
    result = kp.koopman_split(z, split='eigenvalue_weighted')
    koopman_mean = np.einsum('bij,bj->bi', _full_koopman(z),
                             z.double().mean(-1).numpy())
    np.testing.assert_allclose(result.static + result.dynamic, koopman_mean,
                               atol=1e-4)
    operator = _static_operator(kp.reduced_dmd(z), 16, 'eigenvalue_weighted')
    # mask * lambda with lambda = 1.05: T^2 = 1.05 T, not a projector
    np.testing.assert_allclose(operator @ operator, 1.05 * operator,
                               atol=1e-6)


def test_safe_backward_matches_native_on_separated_spectra():
    torch.manual_seed(0)
    z = torch.randn(3, 12, 8, requires_grad=True)
    weights = torch.randn(3, 12)
    grads = []
    for mode in ('safe', 'native'):
        result = kp.koopman_split(z, xi=0.5, spectral_grad=mode)
        assert result.num_static.sum() > 0
        loss = (result.static * weights).sum() + result.dynamic.square().sum()
        grads.append(torch.autograd.grad(loss, z)[0])
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def _degenerate_batches() -> List[Tuple[str, torch.Tensor]]:
    torch.manual_seed(0)
    base = torch.randn(2, 16, 8)
    duplicated = base.clone()
    duplicated[..., 1] = duplicated[..., 0]
    duplicated[..., 5] = duplicated[..., 4]
    rank_one = torch.randn(2, 16, 1) * torch.randn(2, 1, 8)
    return [
        ('constant', base[..., :1].expand(-1, -1, 8).contiguous()),
        ('duplicated', duplicated),
        ('zero', torch.zeros(2, 16, 8)),
        ('rank_one', rank_one),
        ('two_frames', base[..., :2].contiguous()),
        ('tiny', 1e-20 * base),
    ]


@pytest.mark.parametrize('spectral_grad', ['safe', 'detach'])
@pytest.mark.parametrize('split', kp.SPLITS)
def test_split_is_finite_on_degenerate_input(spectral_grad, split):
    for name, z in _degenerate_batches():
        z = z.clone().requires_grad_()
        result = kp.koopman_split(z, split=split, spectral_grad=spectral_grad)
        for field in ('static', 'dynamic', 'unified'):
            assert torch.isfinite(getattr(result, field)).all(), (name, field)
        loss = result.static.square().sum() + result.dynamic.sum()
        grad = torch.autograd.grad(loss, z)[0]
        assert torch.isfinite(grad).all(), name


def test_degenerate_splits_have_the_expected_structure():
    batches = dict(_degenerate_batches())
    constant = kp.koopman_split(batches['constant'])
    # a constant clip is all static: one mode with lambda = 1
    assert constant.num_static.tolist() == [1, 1]
    torch.testing.assert_close(constant.static, constant.unified)
    zero = kp.koopman_split(batches['zero'])
    assert zero.num_static.tolist() == [0, 0]
    assert not zero.static.any() and not zero.dynamic.any()
    assert kp.koopman_split(batches['two_frames']).eigvals.shape == (2, 1)


def test_min_static_keeps_the_modes_nearest_one():
    # nothing within xi = 0.1 of 1: the paper's rule leaves Z_A = 0
    z, static_bases, _, projectors = _linear_system(seed=8, static=(1.25, ))
    paper = kp.koopman_split(z)
    assert paper.num_static.tolist() == [0] * 4
    assert not paper.static.any()
    # min_static=1 makes lambda = 1.25 static: the split of xi = 0.3
    forced = kp.koopman_split(z, min_static=1)
    wide = kp.koopman_split(z, xi=0.3)
    assert forced.num_static.tolist() == [1] * 4
    torch.testing.assert_close(forced.static, wide.static)
    assert _residual_outside(forced.static.double().numpy(),
                             static_bases) < 1e-4
    unified = z.double().mean(-1).numpy()
    np.testing.assert_allclose(
        forced.static, np.einsum('bij,bj->bi', projectors, unified),
        atol=1e-4 * np.abs(unified).max())


def test_min_static_keeps_conjugate_pairs_and_skips_the_nullspace():
    z, *_ = _linear_system(seed=9, static=(0.8 * np.exp(0.4j), ),
                           dynamic=(0.1, -0.5, 0.2 * np.exp(2.0j)))
    result = kp.koopman_split(z, min_static=1)
    # the nearest eigenvalue is one of a conjugate pair: both are static
    assert result.num_static.tolist() == [2] * 4
    assert torch.isfinite(result.static).all()
    zero = kp.koopman_split(torch.zeros(2, 16, 8), min_static=3)
    assert zero.num_static.tolist() == [0, 0]  # lambda = 0 is never static


def _static_plus_rotation(seed: int) -> torch.Tensor:
    """A static mode (lambda = 1) plus one full turn over T = 8 frames, so
    the temporal mean of the dynamic part is exactly 0."""
    return _linear_system(seed=seed, static=(1.0, ),
                          dynamic=(np.exp(2j * np.pi / 8), ))[0]


def test_dynamic_pools_summarise_the_dynamic_part_over_time():
    z = _static_plus_rotation(seed=10)
    pools = {
        pool: kp.koopman_split(z, dynamic_pool=pool)
        for pool in kp.DYNAMIC_POOLS
    }
    for result in pools.values():
        torch.testing.assert_close(result.static, pools['mean'].static)
        assert result.num_static.tolist() == [1] * 4
    # the paper's Z_M = T_M mean_t z_t cancels a full turn ...
    assert pools['mean'].dynamic.abs().max() < 1e-5 * z.abs().max()
    # ... std and abs_mean keep its amplitude; the static part is constant
    dynamic = z - z.mean(-1, keepdim=True)
    torch.testing.assert_close(pools['std'].dynamic,
                               z.std(-1, unbiased=False).float(),
                               rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(pools['abs_mean'].dynamic,
                               dynamic.abs().mean(-1).float(),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize('dynamic_pool', ['std', 'abs_mean'])
@pytest.mark.parametrize('split', kp.SPLITS)
def test_pooled_and_forced_splits_are_finite_on_degenerate_input(
        dynamic_pool, split):
    for name, z in _degenerate_batches():
        z = z.clone().requires_grad_()
        result = kp.koopman_split(z, split=split, min_static=1,
                                  dynamic_pool=dynamic_pool)
        loss = result.static.square().sum() + result.dynamic.sum()
        grad = torch.autograd.grad(loss, z)[0]
        assert torch.isfinite(loss) and torch.isfinite(grad).all(), name


def test_native_backward_fails_where_safe_does_not():
    """The reason for the safe backward: repeated eigenvalues (a constant
    clip has six zero singular values) make PyTorch's gradient non-finite."""
    z = dict(_degenerate_batches())['constant'].clone().requires_grad_()
    result = kp.koopman_split(z, spectral_grad='native')
    grad = torch.autograd.grad(result.static.square().sum(), z)[0]
    assert not torch.isfinite(grad).all()


def test_nearly_defective_dynamic_cluster_keeps_gradients_bounded():
    """Every frame twice: the least-squares K maps z_k to (z_k + z_k+1)/2,
    so A~ has a nearly defective triple eigenvalue 0.5. The divided
    differences inside the dynamic group are 0, so the gradient stays of the
    order of the features, whereas eig's own backward divides by the tiny
    gaps (or refuses, calling the loss phase-dependent)."""
    torch.manual_seed(0)
    z = torch.randn(8, 32, 4).repeat_interleave(2, -1).requires_grad_()
    weights = torch.randn(8, 32)

    def gradient(mode):
        result = kp.koopman_split(z, spectral_grad=mode)
        loss = (result.static * weights).sum() + (
            result.dynamic * weights.flip(-1)).sum()
        return torch.autograd.grad(loss, z)[0]

    safe = gradient('safe').abs().max()
    assert safe < 1e3
    try:
        native = gradient('native').nan_to_num(float('inf')).abs().max()
    except RuntimeError as error:
        assert 'linalg_eig_backward' in str(error)
    else:
        assert native > 1e3 * safe


@pytest.mark.parametrize('estimator', kp.ESTIMATORS)
def test_prediction_loss_is_finite_on_degenerate_input(estimator):
    for name, z in _degenerate_batches():
        views = [z.clone().requires_grad_(), z.flip(-1).requires_grad_()]
        result = kp.koopman_prediction_loss(views, estimator=estimator)
        assert torch.isfinite(result.loss), name
        grads = torch.autograd.grad(result.loss, views)
        assert all(torch.isfinite(g).all() for g in grads), name


def _reference_prediction_loss(views, estimator, nu, ridge):
    """Direct M x M computation of eq. 19 with the given estimator."""
    mses, orths = [], []
    fits = []
    for view in views:
        v = view.double().numpy()
        x, y = v[..., :-1], v[..., 1:]
        if estimator == 'literal' or ridge == 0:
            k = np.stack([yy @ np.linalg.pinv(xx) for xx, yy in zip(x, y)])
        else:
            k = []
            for xx, yy in zip(x, y):
                lam = ridge * np.trace(xx.T @ xx) / xx.shape[1]
                gram = xx @ xx.T + lam * np.eye(len(xx))
                k.append(yy @ xx.T @ np.linalg.inv(gram))
            k = np.stack(k)
        fits.append((k, x, y))
        eye = np.eye(k.shape[-1])
        orths.append(np.mean([np.sum((kk.T @ kk - eye)**2) for kk in k]))
    pairs = ([(a, b) for a in range(len(views)) for b in range(len(views))
              if a != b] if estimator == 'cross_view' else
             [(a, a) for a in range(len(views))])
    for a, b in pairs:
        k, _, _ = fits[a]
        _, x, y = fits[b]
        mses.append(np.mean((k @ x - y)**2))
    return np.mean(mses), np.mean(orths), np.mean(mses) + nu * np.mean(orths)


@pytest.mark.parametrize('estimator,ridge', [('literal', 0.0),
                                             ('ridge', 1e-2),
                                             ('cross_view', 0.0),
                                             ('cross_view', 1e-2)])
def test_prediction_loss_matches_direct_computation(estimator, ridge):
    torch.manual_seed(1)
    views = [torch.randn(3, 10, 6), torch.randn(3, 10, 6)]
    result = kp.koopman_prediction_loss(views, estimator=estimator, nu=0.01,
                                        ridge=ridge)
    mse, orth, loss = _reference_prediction_loss(views, estimator, 0.01,
                                                 ridge)
    np.testing.assert_allclose(result.mse.item(), mse, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(result.orthogonality.item(), orth, rtol=1e-5)
    np.testing.assert_allclose(result.loss.item(), loss, rtol=1e-5)


def test_literal_loss_is_degenerate_and_cross_view_is_informative():
    """Two views = two windows of one trajectory of a known linear system,
    against i.i.d. noise of the same shape. The literal fit reproduces both
    exactly; cross_view separates them by many orders of magnitude."""
    linear_a, *_ = _linear_system(shift=0, seed=6)
    linear_b, *_ = _linear_system(shift=3, seed=6)
    torch.manual_seed(0)
    noise_a, noise_b = torch.randn(2, 4, 16, 8).unbind(0)

    def relative_mse(views, **kwargs):
        result = kp.koopman_prediction_loss(views, **kwargs)
        return (result.mse / views[1].square().mean()).item(), result

    linear, result = relative_mse([linear_a, linear_b], estimator='literal')
    noise, _ = relative_mse([noise_a, noise_b], estimator='literal')
    assert linear < 1e-10 and noise < 1e-10
    assert result.loss > 0  # only nu * (M - rank) and the K^T K misfit
    linear, _ = relative_mse([linear_a, linear_b], ridge=0.0)
    noise, _ = relative_mse([noise_a, noise_b], ridge=0.0)
    assert linear < 1e-10 and noise > 0.1


def test_outputs_are_float32_under_autocast():
    z, *_ = _linear_system(seed=7)
    with torch.autocast(device_type='cpu', dtype=torch.bfloat16):
        result = kp.koopman_split(z.bfloat16())
        loss = kp.koopman_prediction_loss([z.bfloat16(), z.bfloat16()])
    assert result.static.dtype == result.dynamic.dtype == torch.float32
    assert loss.loss.dtype == torch.float32
    assert torch.isfinite(result.static).all() and torch.isfinite(loss.loss)


@pytest.mark.parametrize('kwargs,match', [
    (dict(xi=0.0), 'xi=0.0'),
    (dict(xi=-0.1), 'xi=-0.1'),
    (dict(xi=1.5), 'xi=1.5'),
    (dict(split='orthogonal'), "split='orthogonal'"),
    (dict(spectral_grad='clip'), "spectral_grad='clip'"),
    (dict(rank_tol=0.0), 'rank_tol=0.0'),
    (dict(min_static=-1), 'min_static=-1'),
    (dict(min_static=1.5), 'min_static=1.5'),
    (dict(min_static=True), 'min_static=True'),
    (dict(dynamic_pool='max'), "dynamic_pool='max'"),
])
def test_bad_split_options_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        kp.koopman_split(torch.randn(2, 8, 4), **kwargs)


@pytest.mark.parametrize('kwargs,match', [
    (dict(estimator='pinv'), "estimator='pinv'"),
    (dict(estimator='ridge', ridge=0.0), 'ridge > 0'),
    (dict(nu=-1.0), 'nu=-1.0'),
    (dict(ridge=-1.0), 'ridge=-1.0'),
])
def test_bad_loss_options_are_refused(kwargs, match):
    views = [torch.randn(2, 8, 4), torch.randn(2, 8, 4)]
    with pytest.raises(ValueError, match=match):
        kp.koopman_prediction_loss(views, **kwargs)


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match='T=1'):
        kp.koopman_split(torch.randn(2, 8, 1))
    with pytest.raises(ValueError, match=r'\(2, 8\)'):
        kp.koopman_split(torch.randn(2, 8))
    with pytest.raises(ValueError, match='at least 2 views'):
        kp.koopman_prediction_loss([torch.randn(2, 8, 4)])
    with pytest.raises(ValueError, match=r'views\[1\]'):
        kp.koopman_prediction_loss([torch.randn(2, 8, 4),
                                    torch.randn(2, 8, 5)])
    with pytest.raises(TypeError, match='list'):
        kp.koopman_prediction_loss(torch.randn(2, 8, 4))
