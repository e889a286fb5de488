"""Koopman fit, prediction loss and static/dynamic split of per-frame features.

Pure PyTorch (no registry, config or mm* imports). Notation follows the paper
(section 4.3): ``z`` is a batch of per-frame features ``(B, M, T)``; for each
video ``X = z[..., :-1]`` (previous frames) and ``Y = z[..., 1:]`` (next
frames), both ``M x (T-1)``, and the Koopman operator fitted by least squares
is ``K = Y X^+`` (eq. 18).

``K`` is ``M x M`` but has rank ``r <= T-1`` (7 against M = 128), so ~121 of
its eigenvalues are zero and its eigenvectors are ill-conditioned. Everything
here works in the ``(T-1)``-dimensional snapshot space instead (reduced /
exact DMD, Tu et al. 2014):

* thin SVD of ``X`` through the Gram matrix ``X^T X = V S^2 V^T`` (method of
  snapshots), singular values below ``rank_tol * s_max`` truncated;
* ``A~ = U^T Y V S^-1 = S^-1 V^T (X^T Y) V S^-1`` (``r x r``), whose
  eigenvalues are the nonzero eigenvalues of ``K``; ``A~ = W Lambda W^-1``;
* exact DMD modes ``Phi = Y V S^-1 W`` (``K Phi = Phi Lambda``) and left
  eigenvectors ``Psi^H = Lambda^-1 W^-1 U^T`` (``Psi^H Phi = I``);
* static projector ``T_A = Phi diag(mask / lambda) W^-1 U^T`` with
  ``mask = |lambda - 1| < xi``, ``T_M = I - T_A``. ``T_A`` equals
  ``Phi_full diag(mask) Phi_full^-1`` of the full ``K`` when ``K`` is
  diagonalisable; it annihilates the nullspace of ``K``, which therefore
  belongs to the dynamic part, and ``Z = Z_A + Z_M`` exactly (Proposition 3).

Truncated directions are kept as zero rows/columns of ``A~`` (eigenvalue 0,
dynamic) so that videos of different rank batch together with a fixed
``r = T - 1``.

Gradients through ``eigh``/``eig`` contain ``1 / (lambda_i - lambda_j)``, which
is infinite for repeated eigenvalues (constant clips, zero features, the zero
padding above, duplicated frames). ``spectral_grad='safe'`` (default)
differentiates the static operator as a matrix function of ``A~`` (divided
differences, no division inside the static or the dynamic group) and
broadens the remaining gaps as ``d / (|d|^2 + eps^2)``; ``'detach'`` treats
the fitted operator as a constant; ``'native'`` uses PyTorch's own backward
(for comparison).

All spectral work runs in float64 with autocast disabled; outputs are float32.
"""
from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import Tensor

SPLITS = ('projector', 'eigenvalue_weighted')
ESTIMATORS = ('literal', 'ridge', 'cross_view')
SPECTRAL_GRADS = ('safe', 'detach', 'native')
DYNAMIC_POOLS = ('mean', 'std', 'abs_mean')

# The defaults of every function here and of KoopmanDecoupler, in one place:
# the paper's static threshold and orthogonality weight (sec. 5.1), and the
# numerical settings of docs/koopman.md.
DEFAULT_XI = 0.1
DEFAULT_NU = 1e-4
DEFAULT_RANK_TOL = 1e-4
DEFAULT_SPECTRAL_GRAD = 'safe'
DEFAULT_SPECTRAL_EPS = 1e-10

# Squared singular values below this are zero whatever ``rank_tol`` says, so
# an all-zero clip has rank 0 instead of dividing by zero.
_ABS_SQ_SINGULAR_FLOOR = 1e-30
# Floor on the ridge strength, for all-zero clips (where trace(X^T X) = 0).
_ABS_RIDGE_FLOOR = 1e-12
# Added to the temporal variance before the square root of
# ``dynamic_pool='std'``, whose gradient is infinite at zero variance.
_STD_FLOOR = 1e-12


@dataclass
class KoopmanSplit:
    """Result of :func:`koopman_split`; ``B`` videos, ``r = T - 1`` modes.

    Attributes:
        static: ``(B, M)`` Z_A = T_A mean_t z_t.
        dynamic: ``(B, M)`` Z_M (``unified - static`` for the projector split
            and ``dynamic_pool='mean'``).
        unified: ``(B, M)`` Z = mean_t z_t.
        eigvals: ``(B, r)`` complex eigenvalues of the reduced operator
            (truncated directions appear as 0), sorted by ``|lambda - 1|``.
        static_mask: ``(B, r)`` bool, ``|lambda - 1| < xi`` (see
            :func:`static_mask` for ``min_static``), same order.
        num_static: ``(B,)`` number of static modes per video.
    """
    static: Tensor
    dynamic: Tensor
    unified: Tensor
    eigvals: Tensor
    static_mask: Tensor
    num_static: Tensor


@dataclass
class KoopmanPredictionLoss:
    """L_pred = mse + nu * orthogonality, each a float32 scalar."""
    loss: Tensor
    mse: Tensor
    orthogonality: Tensor


@dataclass
class ReducedDMD:
    """Exact DMD of a batch of clips, all float64/complex128.

    Attributes:
        prev: ``(B, M, T-1)`` X.
        next: ``(B, M, T-1)`` Y.
        right_basis: ``(B, T-1, r)`` V S^-1 (truncated columns are zero), so
            ``U = X V S^-1``.
        reduced: ``(B, r, r)`` A~ = (V S^-1)^T X^T Y (V S^-1).
        rank: ``(B,)`` number of singular values kept.
    """
    prev: Tensor
    next: Tensor
    right_basis: Tensor
    reduced: Tensor
    rank: Tensor


def _broadened_inverse(gap: Tensor, eps: Tensor) -> Tensor:
    """``1 / gap`` for ``|gap| >> eps``, bounded by ``1 / (2 eps)``, 0 at 0."""
    return gap / (gap.abs().square() + eps.square())


def _spectral_eps(eigvals: Tensor, spectral_eps: float,
                  floor: float) -> Tensor:
    """Broadening per matrix, relative to its spectral radius (at least
    ``floor``): ``(B, 1, 1)``."""
    scale = eigvals.abs().amax(dim=-1).clamp_min(floor)
    return (spectral_eps * scale)[..., None, None]


class _SafeEigh(torch.autograd.Function):
    """``torch.linalg.eigh`` whose backward bounds ``1 / (l_j - l_i)``."""

    @staticmethod
    def forward(ctx, matrix: Tensor, spectral_eps: float):
        eigvals, eigvecs = torch.linalg.eigh(matrix)
        ctx.save_for_backward(eigvals, eigvecs)
        ctx.spectral_eps = spectral_eps
        return eigvals, eigvecs

    @staticmethod
    def backward(ctx, grad_eigvals: Optional[Tensor],
                 grad_eigvecs: Optional[Tensor]):
        eigvals, eigvecs = ctx.saved_tensors
        inner = torch.zeros_like(eigvecs)
        if grad_eigvecs is not None:
            gap = eigvals.unsqueeze(-2) - eigvals.unsqueeze(-1)  # l_j - l_i
            eps = _spectral_eps(eigvals, ctx.spectral_eps,
                                _ABS_SQ_SINGULAR_FLOOR)
            inner = (eigvecs.mT @ grad_eigvecs) * _broadened_inverse(gap, eps)
        if grad_eigvals is not None:
            inner = inner + torch.diag_embed(grad_eigvals)
        grad = eigvecs @ inner @ eigvecs.mT
        return (grad + grad.mT) / 2, None


def _spectral_weights(eigvals: Tensor, xi: float, split: str,
                      min_static: int):
    """``g(lambda)``, ``g'(lambda)`` and the static mask of the spectral
    function behind ``T_A``: ``mask / lambda`` (projector) or ``mask``."""
    mask = static_mask(eigvals, xi, min_static)
    ones, zeros = torch.ones_like(eigvals), torch.zeros_like(eigvals)
    if split == 'eigenvalue_weighted':
        return mask.to(eigvals.dtype), zeros, mask
    # static modes have |lambda - 1| < 1 (< xi unless forced by min_static),
    # so |lambda| > 0 and 1/lambda is bounded
    inverse = torch.where(mask, 1 / torch.where(mask, eigvals, ones), zeros)
    return inverse, -inverse.square(), mask


class _StaticFunction(torch.autograd.Function):
    """``F = W diag(g(lambda)) W^-1`` of a real ``A~ = W Lambda W^-1``.

    The backward is that of a primary matrix function (Daleckii-Krein):
    ``dF = W (G o (W^-1 dA W)) W^-1`` with divided differences
    ``G_ij = (g_i - g_j) / (l_i - l_j)``. Within the static and within the
    dynamic group they are known in closed form (``-1 / (l_i l_j)`` or 0), so
    repeated or nearly defective eigenvalues inside a group (constant clips,
    duplicated frames, the zero padding) cost nothing; only static-dynamic
    pairs divide by a gap, broadened as ``d / (|d|^2 + eps^2)``.
    """

    @staticmethod
    def forward(ctx, matrix: Tensor, xi: float, split: str,
                spectral_eps: float, min_static: int):
        eigvals, eigvecs = torch.linalg.eig(matrix)
        values, derivatives, mask = _spectral_weights(eigvals, xi, split,
                                                      min_static)
        inverse = torch.linalg.inv(eigvecs)
        result = ((eigvecs * values.unsqueeze(-2)) @ inverse).real
        ctx.save_for_backward(eigvals, eigvecs, inverse, values,
                              derivatives, mask)
        ctx.spectral_eps = spectral_eps
        ctx.split = split
        ctx.mark_non_differentiable(eigvals)
        return result, eigvals

    @staticmethod
    def backward(ctx, grad_result: Tensor, _grad_eigvals: Optional[Tensor]):
        eigvals, eigvecs, inverse, values, derivatives, mask = (
            ctx.saved_tensors)
        gap = eigvals.unsqueeze(-1) - eigvals.unsqueeze(-2)  # l_i - l_j
        # eigenvalues of A~ are scale-free: broaden relative to max(1, |l|)
        eps = _spectral_eps(eigvals, ctx.spectral_eps, 1.0)
        cross = (values.unsqueeze(-1) - values.unsqueeze(-2)) * (
            gap.conj() / (gap.abs().square() + eps.square()))
        both_static = mask.unsqueeze(-1) & mask.unsqueeze(-2)
        within = torch.zeros_like(cross)
        if ctx.split == 'projector':
            within = -values.unsqueeze(-1) * values.unsqueeze(-2)
        same_group = mask.unsqueeze(-1) == mask.unsqueeze(-2)
        divided = torch.where(same_group,
                              torch.where(both_static, within,
                                          torch.zeros_like(cross)), cross)
        divided = divided - torch.diag_embed(
            divided.diagonal(dim1=-2, dim2=-1)) + torch.diag_embed(
                derivatives)
        grad = grad_result.to(eigvecs.dtype)
        inner = divided.conj() * (eigvecs.mH @ grad @ inverse.mH)
        return (inverse.mH @ inner @ eigvecs.mH).real, None, None, None, None


def _static_function(reduced: Tensor, xi: float, split: str,
                     spectral_grad: str, spectral_eps: float,
                     min_static: int):
    """``(F (B, r, r) real, eigvals (B, r))``; see :class:`_StaticFunction`.
    """
    if spectral_grad == 'safe':
        return _StaticFunction.apply(reduced, xi, split, spectral_eps,
                                     min_static)
    eigvals, eigvecs = torch.linalg.eig(reduced)
    values, _, _ = _spectral_weights(eigvals, xi, split, min_static)
    result = (eigvecs * values.unsqueeze(-2)) @ torch.linalg.inv(eigvecs)
    return result.real, eigvals.detach()


def _eigh(matrix: Tensor, spectral_grad: str, spectral_eps: float):
    if spectral_grad == 'safe':
        return _SafeEigh.apply(matrix, spectral_eps)
    return torch.linalg.eigh(matrix)


def check_features(z: Tensor, name: str = 'z') -> None:
    """Refuse anything but a floating ``(B, M, T)`` tensor with ``T >= 2``."""
    if not isinstance(z, Tensor):
        raise TypeError(f'{name} must be a Tensor of shape (N, M, T), '
                        f'got {type(z).__name__}')
    if z.dim() != 3:
        raise ValueError(f'{name} must have shape (N, M, T), got '
                         f'{tuple(z.shape)}')
    if not z.is_floating_point():
        raise TypeError(f'{name} must be floating point, got {z.dtype}')
    if z.shape[-1] < 2:
        raise ValueError(f'{name} has T={z.shape[-1]} frames; the Koopman '
                         'fit needs T >= 2 (at least one transition)')


def check_options(xi: float = DEFAULT_XI,
                  split: str = 'projector',
                  estimator: str = 'cross_view',
                  nu: float = DEFAULT_NU,
                  ridge: float = 1e-6,
                  rank_tol: float = DEFAULT_RANK_TOL,
                  spectral_grad: str = DEFAULT_SPECTRAL_GRAD,
                  spectral_eps: float = DEFAULT_SPECTRAL_EPS,
                  min_static: int = 0,
                  dynamic_pool: str = 'mean') -> None:
    """Refuse bad hyper-parameters with a message naming the value."""
    if not 0 < xi < 1:
        raise ValueError(f'xi={xi!r}: the static threshold |lambda - 1| < xi '
                         'needs 0 < xi < 1 (xi >= 1 would call the nullspace '
                         'of K, lambda = 0, static)')
    if split not in SPLITS:
        raise ValueError(f'split={split!r}: expected one of {SPLITS}')
    if estimator not in ESTIMATORS:
        raise ValueError(
            f'estimator={estimator!r}: expected one of {ESTIMATORS}')
    if spectral_grad not in SPECTRAL_GRADS:
        raise ValueError(f'spectral_grad={spectral_grad!r}: expected one of '
                         f'{SPECTRAL_GRADS}')
    if nu < 0:
        raise ValueError(f'nu={nu!r}: the orthogonality weight must be >= 0')
    if ridge < 0:
        raise ValueError(f'ridge={ridge!r}: must be >= 0')
    if estimator == 'ridge' and ridge == 0:
        raise ValueError("estimator='ridge' needs ridge > 0 (ridge=0 is the "
                         "'literal' estimator)")
    if not 0 < rank_tol < 1:
        raise ValueError(f'rank_tol={rank_tol!r}: expected 0 < rank_tol < 1')
    if not spectral_eps > 0:
        raise ValueError(f'spectral_eps={spectral_eps!r}: must be > 0')
    if isinstance(min_static, bool) or not isinstance(
            min_static, int) or min_static < 0:
        raise ValueError(f'min_static={min_static!r}: expected an int >= 0 '
                         '(modes nearest lambda = 1 counted as static)')
    if dynamic_pool not in DYNAMIC_POOLS:
        raise ValueError(f'dynamic_pool={dynamic_pool!r}: expected one of '
                         f'{DYNAMIC_POOLS}')


def _as_float64(z: Tensor) -> Tensor:
    return z.to(torch.float64)


def _truncated_inverse_sqrt(sq_singular: Tensor, rank_tol: float) -> Tensor:
    """``S^-1`` from ``S^2``, 0 for truncated directions (no NaN in grads)."""
    keep = sq_singular > (rank_tol**2) * sq_singular.amax(
        dim=-1, keepdim=True)
    keep = keep & (sq_singular > _ABS_SQ_SINGULAR_FLOOR)
    safe = torch.where(keep, sq_singular, torch.ones_like(sq_singular))
    return torch.where(keep, safe.rsqrt(), torch.zeros_like(safe))


def _pinv_gram(prev: Tensor, rank_tol: float, spectral_grad: str,
               spectral_eps: float):
    """``V S^-1`` of ``X = U S V^T`` via ``eigh(X^T X)``: ``(B, T-1, T-1)``."""
    sq_singular, right = _eigh(prev.mT @ prev, spectral_grad, spectral_eps)
    inv_singular = _truncated_inverse_sqrt(sq_singular, rank_tol)
    return right * inv_singular.unsqueeze(-2), (inv_singular > 0).sum(-1)


def reduced_dmd(z: Tensor,
                rank_tol: float = DEFAULT_RANK_TOL,
                spectral_grad: str = DEFAULT_SPECTRAL_GRAD,
                spectral_eps: float = DEFAULT_SPECTRAL_EPS) -> ReducedDMD:
    """Exact DMD of each clip; never forms the ``M x M`` operator.

    Args:
        z: ``(B, M, T)`` per-frame features, ``T >= 2``.
        rank_tol: Singular values of X below ``rank_tol * s_max`` are dropped.
        spectral_grad: ``'safe'``, ``'detach'`` or ``'native'`` (module doc).
        spectral_eps: Relative broadening of the safe backward.

    Returns:
        :class:`ReducedDMD` with ``r = T - 1``.
    """
    check_features(z)
    with torch.autocast(device_type=z.device.type, enabled=False):
        z = _as_float64(z)
        if spectral_grad == 'detach':
            z = z.detach()
        prev, nxt = z[..., :-1], z[..., 1:]
        right_basis, rank = _pinv_gram(prev, rank_tol, spectral_grad,
                                       spectral_eps)
        reduced = right_basis.mT @ (prev.mT @ nxt) @ right_basis
    return ReducedDMD(prev, nxt, right_basis, reduced, rank)


def static_mask(eigvals: Tensor, xi: float, min_static: int = 0) -> Tensor:
    """``|lambda - 1| < xi``: modes that stay constant over time.

    With ``min_static = k > 0`` the k eigenvalues nearest 1 count as static
    too, provided ``|lambda - 1| < 1`` (so ``1 / lambda`` stays bounded);
    ties (a complex-conjugate pair) are kept together so that ``T_A`` stays
    real. ``k = 0`` is the paper's rule, under which a clip whose spectrum
    has nothing within ``xi`` of 1 gets ``Z_A = 0``.
    """
    distance = (eigvals - 1).abs()
    mask = distance < xi
    if min_static > 0:
        count = min(min_static, distance.shape[-1])
        kth = distance.kthvalue(count, dim=-1, keepdim=True).values
        # conjugates differ in distance by rounding only
        nearest = distance <= kth * (1 + 1e-9) + 1e-12
        mask = mask | (nearest & (distance < 1))
    return mask


def reduced_static_operator(dmd: ReducedDMD,
                            xi: float = DEFAULT_XI,
                            split: str = 'projector',
                            spectral_grad: str = DEFAULT_SPECTRAL_GRAD,
                            spectral_eps: float = DEFAULT_SPECTRAL_EPS,
                            min_static: int = 0):
    """``T_A`` of each clip in reduced coordinates, without forming it.

    ``T_A = Y (V S^-1) F (V S^-1)^T X^T`` with ``F = W diag(g) W^-1``:

    * ``projector``: ``g = mask / lambda``, i.e.
      ``T_A = Phi diag(mask / lambda) W^-1 U^T`` (idempotent);
    * ``eigenvalue_weighted``: ``g = mask``, i.e. ``Phi diag(mask) W^-1 U^T``
      = ``Phi_full diag(mask * lambda) Phi_full^-1``, the official code's
      form (not a projector; ``T_A + T_M = K``, not ``I``).

    ``min_static``: see :func:`static_mask`.

    Returns:
        ``F`` ``(B, r, r)`` float64 and the eigenvalues ``(B, r)`` of ``A~``.
    """
    return _static_function(dmd.reduced, xi, split, spectral_grad,
                            spectral_eps, min_static)


def _apply(dmd: ReducedDMD, operator: Tensor, vectors: Tensor) -> Tensor:
    reduced = dmd.right_basis.mT @ (dmd.prev.mT @ _as_float64(vectors))
    return dmd.next @ (dmd.right_basis @ (operator @ reduced))


def apply_static_operator(dmd: ReducedDMD,
                          vectors: Tensor,
                          xi: float = DEFAULT_XI,
                          split: str = 'projector',
                          spectral_grad: str = DEFAULT_SPECTRAL_GRAD,
                          spectral_eps: float = DEFAULT_SPECTRAL_EPS,
                          min_static: int = 0) -> Tensor:
    """``T_A`` of each clip applied to ``vectors (B, M, k)``: ``(B, M, k)``
    float64; see :func:`reduced_static_operator`."""
    operator, _ = reduced_static_operator(dmd, xi, split, spectral_grad,
                                          spectral_eps, min_static)
    return _apply(dmd, operator, vectors)


def _koopman_image(dmd: ReducedDMD, vectors: Tensor) -> Tensor:
    """``K v = Y (V S^-1)(V S^-1)^T X^T v`` of ``vectors (B, M, k)``."""
    return dmd.next @ (dmd.right_basis @ (
        dmd.right_basis.mT @ (dmd.prev.mT @ vectors)))


def _pooled_dynamic(dmd: ReducedDMD, operator: Tensor, frames: Tensor,
                    split: str, dynamic_pool: str) -> Tensor:
    """``T_M z_t`` of every frame, pooled over time by ``std`` or
    ``abs_mean``: ``(B, M, 1)``."""
    image = frames if split == 'projector' else _koopman_image(dmd, frames)
    return pool_over_time(image - _apply(dmd, operator, frames),
                          dynamic_pool).unsqueeze(-1)


def pool_over_time(dynamic: Tensor, dynamic_pool: str) -> Tensor:
    """``(..., T)`` -> ``(...)`` by ``'abs_mean'`` or ``'std'``."""
    if dynamic_pool == 'abs_mean':
        return dynamic.abs().mean(dim=-1)
    # the floor keeps the gradient of sqrt finite for constant features
    return (dynamic.var(dim=-1, unbiased=False) + _STD_FLOOR).sqrt()


def koopman_split(z: Tensor,
                  xi: float = DEFAULT_XI,
                  split: str = 'projector',
                  rank_tol: float = DEFAULT_RANK_TOL,
                  spectral_grad: str = DEFAULT_SPECTRAL_GRAD,
                  spectral_eps: float = DEFAULT_SPECTRAL_EPS,
                  min_static: int = 0,
                  dynamic_pool: str = 'mean') -> KoopmanSplit:
    """Split the temporal mean of each clip into static and dynamic parts.

    Args:
        z: ``(B, M, T)`` per-frame features, ``T >= 2``.
        xi: Static threshold on ``|lambda - 1|``, ``0 < xi < 1``.
        split: ``'projector'`` (Z_A + Z_M = Z) or ``'eigenvalue_weighted'``
            (Z_A + Z_M = K Z, the official code).
        rank_tol, spectral_grad, spectral_eps: See :func:`reduced_dmd`.
        min_static: At least this many modes (the eigenvalues nearest 1)
            are static; 0 is the paper's rule (see :func:`static_mask`).
        dynamic_pool: How Z_M summarises the dynamic part ``T_M z_t`` over
            time: ``'mean'`` (the paper, ``T_M mean_t z_t``), ``'std'``
            (temporal standard deviation per dimension) or ``'abs_mean'``
            (mean of ``|T_M z_t|``). The mean of an oscillating mode
            cancels; the other two keep its amplitude.

    Returns:
        :class:`KoopmanSplit`, float32 features.
    """
    check_options(xi=xi, split=split, rank_tol=rank_tol,
                  spectral_grad=spectral_grad, spectral_eps=spectral_eps,
                  min_static=min_static, dynamic_pool=dynamic_pool)
    dmd = reduced_dmd(z, rank_tol, spectral_grad, spectral_eps)
    with torch.autocast(device_type=z.device.type, enabled=False):
        frames = _as_float64(z)
        unified = frames.mean(dim=-1, keepdim=True)
        operator, eigvals = reduced_static_operator(dmd, xi, split,
                                                    spectral_grad,
                                                    spectral_eps, min_static)
        static = _apply(dmd, operator, unified)
        if dynamic_pool != 'mean':
            dynamic = _pooled_dynamic(dmd, operator, frames, split,
                                      dynamic_pool)
        elif split == 'projector':
            dynamic = unified - static
        else:
            dynamic = _koopman_image(dmd, unified) - static
    order = (eigvals - 1).abs().argsort(dim=-1)
    eigvals = eigvals.gather(-1, order)
    mask = static_mask(eigvals, xi, min_static)
    return KoopmanSplit(
        static=static.squeeze(-1).float(),
        dynamic=dynamic.squeeze(-1).float(),
        unified=unified.squeeze(-1).float(),
        eigvals=eigvals.to(torch.complex64),
        static_mask=mask,
        num_static=mask.sum(dim=-1))


def full_koopman_split(z: Tensor,
                       xi: float = DEFAULT_XI,
                       split: str = 'projector',
                       rank_tol: float = DEFAULT_RANK_TOL) -> KoopmanSplit:
    """Reference path: ``eig`` of the full ``M x M`` ``K = Y X^+`` (the paper
    and official code), with PyTorch's own backward. For tests and
    benchmarks; ill-conditioned by its ``M - r`` zero eigenvalues."""
    check_options(xi=xi, split=split, rank_tol=rank_tol)
    check_features(z)
    with torch.autocast(device_type=z.device.type, enabled=False):
        z64 = _as_float64(z)
        prev, nxt = z64[..., :-1], z64[..., 1:]
        koopman = nxt @ torch.linalg.pinv(prev, rtol=rank_tol)
        eigvals, modes = torch.linalg.eig(koopman)
        mask = static_mask(eigvals, xi)
        weights = mask.to(eigvals.dtype)
        if split == 'eigenvalue_weighted':
            weights = weights * eigvals
        unified = z64.mean(dim=-1, keepdim=True)
        coords = torch.linalg.solve(modes, unified.to(modes.dtype))
        static = (modes @ (weights.unsqueeze(-1) * coords)).real
        dynamic = (unified - static if split == 'projector' else
                   koopman @ unified - static)
    order = (eigvals - 1).abs().argsort(dim=-1)
    eigvals = eigvals.gather(-1, order).detach()
    mask = static_mask(eigvals, xi)
    return KoopmanSplit(static.squeeze(-1).float(),
                        dynamic.squeeze(-1).float(),
                        unified.squeeze(-1).float(),
                        eigvals.to(torch.complex64), mask, mask.sum(dim=-1))


def _fit(prev: Tensor, estimator: str, ridge: float, rank_tol: float,
         spectral_grad: str, spectral_eps: float) -> Tensor:
    """``C`` with ``K = Y C X^T``: ``(X^T X)^+`` (rank-truncated) or
    ``(X^T X + lam I)^-1`` with ``lam = ridge * mean(S^2)``: ``(B, T-1, T-1)``.
    """
    if estimator == 'literal' or ridge == 0:
        right_basis, _ = _pinv_gram(prev, rank_tol, spectral_grad,
                                    spectral_eps)
        return right_basis @ right_basis.mT
    gram = prev.mT @ prev
    strength = ridge * gram.diagonal(dim1=-2, dim2=-1).mean(-1)
    strength = strength.clamp_min(_ABS_RIDGE_FLOOR)[..., None, None]
    eye = torch.eye(gram.shape[-1], dtype=gram.dtype, device=gram.device)
    return torch.linalg.inv(gram + strength * eye)


def _orthogonality(prev: Tensor, nxt: Tensor, coupling: Tensor) -> Tensor:
    """``||K^T K - I||_F^2`` per clip for ``K = Y C X^T``, in ``(T-1)`` form:
    ``K^T K = X P X^T`` with ``P = C Y^T Y C``, so the value is
    ``tr((P G)^2) - 2 tr(P G) + M`` with ``G = X^T X``."""
    inner = coupling @ (nxt.mT @ nxt) @ coupling @ (prev.mT @ prev)
    square_trace = (inner * inner.mT).sum(dim=(-2, -1))
    return (square_trace - 2 * inner.diagonal(dim1=-2, dim2=-1).sum(-1) +
            prev.shape[-2])


def _check_views(views: Sequence[Tensor], estimator: str) -> None:
    """Refuse anything but V >= 1 (>= 2 for ``cross_view``) same-shaped
    ``(N, M, T)`` views."""
    if isinstance(views, Tensor) or len(views) == 0:
        raise TypeError('views must be a non-empty list of (N, M, T) '
                        'tensors, one per view')
    for index, view in enumerate(views):
        check_features(view, f'views[{index}]')
        if view.shape != views[0].shape:
            raise ValueError(f'views[{index}] has shape {tuple(view.shape)}, '
                             f'views[0] has {tuple(views[0].shape)}; all '
                             'views must share (N, M, T)')
    if estimator == 'cross_view' and len(views) < 2:
        raise ValueError(f"estimator='cross_view' needs at least 2 views of "
                         f'each video, got {len(views)}')


def koopman_prediction_loss(views: Sequence[Tensor],
                            estimator: str = 'cross_view',
                            nu: float = DEFAULT_NU,
                            ridge: float = 1e-6,
                            rank_tol: float = DEFAULT_RANK_TOL,
                            spectral_grad: str = DEFAULT_SPECTRAL_GRAD,
                            spectral_eps: float = DEFAULT_SPECTRAL_EPS
                            ) -> KoopmanPredictionLoss:
    """L_pred = MSE(K X, Y) + nu ||K^T K - I||_F^2 (eq. 19), three estimators
    (returns a :class:`KoopmanPredictionLoss`).

    * ``literal``: K = Y X^+ on each view and scored on the same view (eq.
      18-19). With M >= T-1 it reproduces the transitions exactly, so the
      MSE is ~0 and carries no signal; kept for reproduction.
    * ``ridge``: K = Y X^T (X X^T + lam I)^-1, lam = ``ridge`` * mean squared
      singular value of X, scored on the same view.
    * ``cross_view``: K fitted on one view of a video (pseudo-inverse if
      ``ridge == 0``, else ridge) predicts the transitions of every other
      view of the same video; averaged over all ordered pairs. Needs V >= 2.

    The orthogonality term is the full ``M x M`` Frobenius norm (including
    the constant ``M - rank`` that a rank-deficient K cannot remove), computed
    in ``(T-1)`` form. All sums in float64; outputs float32.

    Args:
        views: V tensors ``(N, M, T)``, the views of video i at row i.
        estimator: ``'literal'``, ``'ridge'`` or ``'cross_view'``.
        nu: Weight of the orthogonality term.
        ridge: Relative ridge strength (``ridge`` and ``cross_view``).
        rank_tol, spectral_grad, spectral_eps: See :func:`reduced_dmd`
            (``'detach'`` behaves like ``'safe'`` here: L_pred must train).
    """
    check_options(estimator=estimator, nu=nu, ridge=ridge, rank_tol=rank_tol,
                  spectral_grad=spectral_grad, spectral_eps=spectral_eps)
    _check_views(views, estimator)
    grad_mode = 'safe' if spectral_grad == 'detach' else spectral_grad
    with torch.autocast(device_type=views[0].device.type, enabled=False):
        pairs = [(_as_float64(v)[..., :-1], _as_float64(v)[..., 1:])
                 for v in views]
        couplings = [
            _fit(prev, estimator, ridge, rank_tol, grad_mode, spectral_eps)
            for prev, _ in pairs
        ]
        if estimator == 'cross_view':
            scored = [(a, b) for a in range(len(pairs))
                      for b in range(len(pairs)) if a != b]
        else:
            scored = [(a, a) for a in range(len(pairs))]
        mse = torch.stack([
            (pairs[a][1] @ (couplings[a] @ (pairs[a][0].mT @ pairs[b][0])) -
             pairs[b][1]).square().mean() for a, b in scored
        ]).mean()
        orthogonality = torch.stack([
            _orthogonality(prev, nxt, coupling).mean()
            for (prev, nxt), coupling in zip(pairs, couplings)
        ]).mean()
    return KoopmanPredictionLoss(
        loss=(mse + nu * orthogonality).float(),
        mse=mse.float(),
        orthogonality=orthogonality.float())
