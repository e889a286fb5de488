"""One Koopman operator per batch: fit, spectral loss and static/dynamic split.

Pure PyTorch (no registry, config or mm* imports). The per-clip fit of
:mod:`mmbodvcl.functional.koopman` sees ``T - 1`` transitions in ``M``
dimensions (7 against 32-128): least squares reproduces them exactly, the
operator has rank ``T - 1`` and nothing makes an eigenvalue sit at 1. Here
(as in structured Koopman autoencoders, Berman et al., ICLR 2023) ONE
operator ``K`` (``M x M``) is fitted to the consecutive pairs of all clips
and views of a batch,

    ``G = sum X X^T``, ``C = sum Y X^T`` (sums over clips, ``X`` the
    previous and ``Y`` the next frames of one clip: pairs never cross
    clips), ``K = C (G + lam I)^-1``, ``lam = ridge * tr(G) / M``,

and every clip is split in its shared eigenbasis: the ``static_size``
eigenvalues nearest 1 (a complex-conjugate pair is kept together; only
eigenvalues with ``|lambda - 1| < 1``) span the static subspace,
``T_A = Re(Phi diag(mask) Phi^-1)``, ``Z_A = T_A mean_t z``,
``Z_M = Z - Z_A`` (with ``static_size = 0``: the disc ``|lambda - 1| < xi``).

Under ``torch.distributed`` (when asked for) ``G``, ``C``, ``sum ||Y||^2``
and the pair count are all-reduced *with their gradient*
(``torch.distributed.nn.functional.all_reduce``), so every rank fits the
operator of the global batch and the gradient averaged by DDP equals that
of one process.

The lower-level loss: relative residual ``||Y - K X||^2 / ||Y||^2`` of the
batch fit (from the sums alone), ``nu ||K^T K - I||_F^2`` (zero for an
orthogonal ``K``, reachable here since ``K`` has full rank), and a spectral
term: static eigenvalues pulled to 1 (``|lambda - 1|^2``), the others pushed
out of the disc ``|lambda - 1| < bound`` (``relu(bound - |lambda - 1|)^2``).

All of it runs in float64 with autocast disabled; features come back float32.
"""
from dataclasses import dataclass
from typing import Sequence, Tuple

import torch
from torch import Tensor

from .koopman import (_ABS_RIDGE_FLOOR, DEFAULT_SPECTRAL_EPS,
                      DEFAULT_SPECTRAL_GRAD, DYNAMIC_POOLS, SPECTRAL_GRADS,
                      KoopmanSplit, _as_float64, _static_function,
                      check_features, pool_over_time, reduced_dmd,
                      static_mask)

OPERATORS = ('per_clip', 'batch')
DEFAULT_BATCH_RIDGE = 1e-4
DEFAULT_STATIC_SIZE = 4
DEFAULT_SPECTRAL_BOUND = 0.3


@dataclass
class BatchMoments:
    """Sums over every consecutive pair of every clip (float64).

    Attributes:
        gram: ``(M, M)`` sum of ``X X^T``.
        cross: ``(M, M)`` sum of ``Y X^T``.
        next_energy: scalar sum of ``||Y||^2``.
        pairs: scalar number of pairs (no gradient).
        clip_pairs: pairs one clip gives over all its views (``V (T - 1)``),
            to say how many clips a batch needs.
    """
    gram: Tensor
    cross: Tensor
    next_energy: Tensor
    pairs: Tensor
    clip_pairs: int = 1


@dataclass
class BatchKoopmanFit:
    """The batch operator and its static projector.

    Attributes:
        operator: ``(M, M)`` float64 ``K``.
        projector: ``(M, M)`` float64 ``T_A``.
        eigvals: ``(M,)`` complex128 eigenvalues of ``K`` (no gradient).
        static_mask: ``(M,)`` bool, the static ones.
    """
    operator: Tensor
    projector: Tensor
    eigvals: Tensor
    static_mask: Tensor


@dataclass
class BatchKoopmanLoss:
    """Lower-level loss of the batch operator, float32 scalars:
    ``loss = mse + nu * orthogonality + w_s * spectral_static + w_d *
    spectral_dynamic``."""
    loss: Tensor
    mse: Tensor
    orthogonality: Tensor
    spectral_static: Tensor
    spectral_dynamic: Tensor


def check_batch_options(operator: str = 'per_clip',
                        static_size: int = DEFAULT_STATIC_SIZE,
                        spectral_static: float = 0.0,
                        spectral_dynamic: float = 0.0,
                        spectral_bound: float = DEFAULT_SPECTRAL_BOUND,
                        batch_ridge: float = DEFAULT_BATCH_RIDGE) -> None:
    """Refuse bad options of the batch operator and the spectral term."""
    if operator not in OPERATORS:
        raise ValueError(
            f'operator={operator!r}: expected one of {OPERATORS}')
    if isinstance(static_size, bool) or not isinstance(
            static_size, int) or static_size < 0:
        raise ValueError(f'static_size={static_size!r}: expected an int >= '
                         '0 (eigenvalues nearest 1 taken as static; 0: the '
                         'disc |lambda - 1| < xi)')
    for name, value in (('spectral_static', spectral_static),
                        ('spectral_dynamic', spectral_dynamic)):
        if not value >= 0:
            raise ValueError(f'{name}={value!r}: the weight must be >= 0')
    if not 0 < spectral_bound < 2:
        raise ValueError(f'spectral_bound={spectral_bound!r}: expected 0 < '
                         'bound < 2 (dynamic eigenvalues are pushed to '
                         '|lambda - 1| >= bound)')
    if not batch_ridge > 0:
        raise ValueError(f'batch_ridge={batch_ridge!r}: the batch fit needs '
                         'a relative ridge > 0')


def _as_views(views) -> Sequence[Tensor]:
    if isinstance(views, Tensor):
        views = [views]
    if len(views) == 0:
        raise TypeError('views must be a (B, M, T) tensor or a non-empty '
                        'list of them')
    for index, view in enumerate(views):
        check_features(view, f'views[{index}]')
        if view.shape[1:] != views[0].shape[1:]:
            raise ValueError(f'views[{index}] has shape {tuple(view.shape)}, '
                             f'views[0] has {tuple(views[0].shape)}; all '
                             'views must share (M, T)')
    return views


def _all_reduce_with_grad(packed: Tensor) -> Tensor:
    import torch.distributed as dist
    from torch.distributed.nn.functional import all_reduce
    if not (dist.is_available() and dist.is_initialized()):
        return packed
    return all_reduce(packed, op=dist.ReduceOp.SUM)


def batch_moments(views, distributed: bool = False) -> BatchMoments:
    """Sums of ``X X^T``, ``Y X^T``, ``||Y||^2`` and the pair count over the
    clips of ``views`` (a ``(B, M, T)`` tensor or a list of them), pairs
    within each clip only; all-reduced with gradient when ``distributed``
    and a process group is initialised."""
    views = _as_views(views)
    with torch.autocast(device_type=views[0].device.type, enabled=False):
        frames = torch.cat([_as_float64(view) for view in views])
        prev, nxt = frames[..., :-1], frames[..., 1:]
        gram = torch.einsum('bmt,bnt->mn', prev, prev)
        cross = torch.einsum('bmt,bnt->mn', nxt, prev)
        energy = nxt.square().sum()
        pairs = torch.tensor(float(prev.shape[0] * prev.shape[-1]),
                             dtype=frames.dtype, device=frames.device)
        if distributed:
            size = gram.numel()
            packed = _all_reduce_with_grad(
                torch.cat([gram.flatten(), cross.flatten(),
                           energy[None], pairs[None]]))
            gram = packed[:size].view_as(gram)
            cross = packed[size:2 * size].view_as(cross)
            energy, pairs = packed[-2], packed[-1].detach()
    return BatchMoments(gram, cross, energy, pairs,
                        clip_pairs=len(views) * prev.shape[-1])


def fit_batch_operator(moments: BatchMoments, ridge: float) -> Tensor:
    """``K = C (G + lam I)^-1``, ``lam = ridge * tr(G) / M``: ``(M, M)``.

    Refuses a batch with fewer pairs than dimensions: the operator would be
    determined by the ridge in the unseen directions. Each clip gives
    ``V (T - 1)`` pairs, so a batch (over all ranks) needs at least
    ``ceil(M / (V (T - 1)))`` clips, e.g. 3 for M = 32, 2 views of 8
    frames."""
    size = moments.gram.shape[-1]
    if moments.pairs.item() < size:
        clips = -(-size // max(moments.clip_pairs, 1))
        raise ValueError(
            f'the batch Koopman operator needs at least M = {size} '
            f'consecutive-frame pairs over all clips and views, got '
            f'{int(moments.pairs.item())}; at {moments.clip_pairs} pairs '
            f'a clip that is at least {clips} clips per batch (all ranks '
            'together): use more clips per batch (or a larger lower_batch) '
            "or operator='per_clip'")
    gram = moments.gram
    strength = (ridge * gram.diagonal().sum() / size).clamp_min(
        _ABS_RIDGE_FLOOR)
    eye = torch.eye(size, dtype=gram.dtype, device=gram.device)
    # G is symmetric: K^T = (G + lam I)^-1 C^T
    return torch.linalg.solve(gram + strength * eye, moments.cross.mT).mT


def _selection(xi: float, static_size: int) -> Tuple[float, int]:
    """``(xi, min_static)`` for :func:`static_mask`: exactly the
    ``static_size`` nearest 1 (conjugates kept together), or the xi disc
    when ``static_size = 0``."""
    return (0.0, static_size) if static_size > 0 else (xi, 0)


def fit_batch_koopman(views,
                      xi: float = 0.1,
                      static_size: int = DEFAULT_STATIC_SIZE,
                      ridge: float = DEFAULT_BATCH_RIDGE,
                      spectral_grad: str = DEFAULT_SPECTRAL_GRAD,
                      spectral_eps: float = DEFAULT_SPECTRAL_EPS,
                      distributed: bool = False) -> BatchKoopmanFit:
    """The batch operator of ``views`` and its static projector ``T_A``.

    ``T_A = Re(W diag(mask) W^-1)`` is differentiated as a matrix function
    of ``K`` (the safe backward of :mod:`mmbodvcl.functional.koopman`:
    no division inside the static or the dynamic group)."""
    if spectral_grad not in SPECTRAL_GRADS:
        raise ValueError(f'spectral_grad={spectral_grad!r}: expected one of '
                         f'{SPECTRAL_GRADS}')
    views = _as_views(views)
    with torch.autocast(device_type=views[0].device.type, enabled=False):
        moments = batch_moments(views, distributed)
        operator = fit_batch_operator(moments, ridge)
        fitted = operator.detach() if spectral_grad == 'detach' else operator
        sel_xi, sel_size = _selection(xi, static_size)
        # g = mask: on the full operator this is the spectral projector
        projector, eigvals = _static_function(fitted[None], sel_xi,
                                              'eigenvalue_weighted',
                                              spectral_grad, spectral_eps,
                                              sel_size)
        eigvals = eigvals[0].detach()
    return BatchKoopmanFit(operator, projector[0], eigvals,
                           static_mask(eigvals, sel_xi, sel_size))


def _pooled_dynamic(frames: Tensor, projector: Tensor, pool: str) -> Tensor:
    """``(I - T_A) z_t`` of every frame pooled over time (``std`` or
    ``abs_mean``): ``(B, M)``."""
    dynamic = frames - torch.einsum('mn,bnt->bmt', projector, frames)
    return pool_over_time(dynamic, pool)


def batch_koopman_split(z: Tensor,
                        xi: float = 0.1,
                        static_size: int = DEFAULT_STATIC_SIZE,
                        ridge: float = DEFAULT_BATCH_RIDGE,
                        spectral_grad: str = DEFAULT_SPECTRAL_GRAD,
                        spectral_eps: float = DEFAULT_SPECTRAL_EPS,
                        dynamic_pool: str = 'mean',
                        distributed: bool = False) -> KoopmanSplit:
    """Split every clip of ``z (B, M, T)`` with the one operator fitted on
    all of them: ``Z_A = T_A mean_t z``, ``Z_M = Z - Z_A`` (or the pooled
    ``(I - T_A) z_t``, see ``dynamic_pool`` of
    :func:`mmbodvcl.functional.koopman.koopman_split`).

    Returns:
        :class:`KoopmanSplit` whose ``eigvals`` / ``static_mask`` are those
        of the shared operator (``M`` of them, sorted by ``|lambda - 1|``),
        repeated for every clip.
    """
    if dynamic_pool not in DYNAMIC_POOLS:
        raise ValueError(f'dynamic_pool={dynamic_pool!r}: expected one of '
                         f'{DYNAMIC_POOLS}')
    fit = fit_batch_koopman(z, xi, static_size, ridge, spectral_grad,
                            spectral_eps, distributed)
    with torch.autocast(device_type=z.device.type, enabled=False):
        frames = _as_float64(z)
        unified = frames.mean(dim=-1)
        static = unified @ fit.projector.mT
        dynamic = (unified - static if dynamic_pool == 'mean' else
                   _pooled_dynamic(frames, fit.projector, dynamic_pool))
    order = (fit.eigvals - 1).abs().argsort()
    batch = (z.shape[0], -1)
    mask = fit.static_mask[order].expand(batch)
    return KoopmanSplit(static=static.float(), dynamic=dynamic.float(),
                        unified=unified.float(),
                        eigvals=fit.eigvals[order].to(
                            torch.complex64).expand(batch),
                        static_mask=mask, num_static=mask.sum(dim=-1))


def spectral_terms(eigvals: Tensor, mask: Tensor,
                   bound: float) -> Tuple[Tensor, Tensor]:
    """``(mean |lambda_s - 1|^2, mean relu(bound - |lambda_d - 1|)^2)`` over
    the static (``mask``) and the other eigenvalues; 0 for an empty set.
    Works for one operator ``(M,)`` or per clip ``(B, r)``."""
    distance = (eigvals - 1).abs()
    static = mask.to(distance.dtype)
    dynamic = 1 - static
    pulled = (distance.square() * static).sum() / static.sum().clamp_min(1)
    pushed = (torch.relu(bound - distance).square() *
              dynamic).sum() / dynamic.sum().clamp_min(1)
    return pulled, pushed


def orthogonality(operator: Tensor) -> Tensor:
    """``||K^T K - I||_F^2``."""
    eye = torch.eye(operator.shape[-1], dtype=operator.dtype,
                    device=operator.device)
    return (operator.mT @ operator - eye).square().sum(dim=(-2, -1))


def batch_prediction_loss(views,
                          nu: float = 1e-4,
                          ridge: float = DEFAULT_BATCH_RIDGE,
                          xi: float = 0.1,
                          static_size: int = DEFAULT_STATIC_SIZE,
                          spectral_static: float = 0.0,
                          spectral_dynamic: float = 0.0,
                          spectral_bound: float = DEFAULT_SPECTRAL_BOUND,
                          distributed: bool = False) -> BatchKoopmanLoss:
    """Lower-level loss of the batch operator of ``views``.

    ``mse = ||Y - K X||^2 / ||Y||^2`` over all pairs, from the sums alone
    (``||Y||^2 - 2 tr(K^T C) + tr(K G K^T)``), so under DDP every rank
    computes the loss of the global batch. The spectral term takes the
    eigenvalues of ``K`` (PyTorch's ``eigvals`` backward; ``K`` has full
    rank and its eigenvalue gradients are finite unless ``K`` is defective)
    and the static set of :func:`fit_batch_koopman`.
    """
    views = _as_views(views)
    with torch.autocast(device_type=views[0].device.type, enabled=False):
        moments = batch_moments(views, distributed)
        operator = fit_batch_operator(moments, ridge)
        residual = (moments.next_energy -
                    2 * (operator * moments.cross).sum() +
                    ((operator @ moments.gram) * operator).sum())
        mse = residual.clamp_min(0) / moments.next_energy.clamp_min(
            _ABS_RIDGE_FLOOR)
        orth = orthogonality(operator)
        loss = mse + nu * orth
        pulled = pushed = torch.zeros_like(mse)
        if spectral_static > 0 or spectral_dynamic > 0:
            eigvals = torch.linalg.eigvals(operator)
            mask = static_mask(eigvals.detach(), *_selection(xi, static_size))
            pulled, pushed = spectral_terms(eigvals, mask, spectral_bound)
            loss = loss + spectral_static * pulled + spectral_dynamic * pushed
    return BatchKoopmanLoss(loss.float(), mse.float(), orth.float(),
                            pulled.float(), pushed.float())


def per_clip_spectral_terms(views,
                            xi: float = 0.1,
                            min_static: int = 0,
                            bound: float = DEFAULT_SPECTRAL_BOUND,
                            rank_tol: float = 1e-4,
                            spectral_grad: str = DEFAULT_SPECTRAL_GRAD,
                            spectral_eps: float = DEFAULT_SPECTRAL_EPS
                            ) -> Tuple[Tensor, Tensor]:
    """:func:`spectral_terms` on the eigenvalues of every clip's own reduced
    operator (the per-clip split's static set: the xi disc, plus the
    ``min_static`` nearest 1), float64 scalars."""
    views = _as_views(views)
    with torch.autocast(device_type=views[0].device.type, enabled=False):
        dmd = reduced_dmd(torch.cat(list(views)), rank_tol, spectral_grad,
                          spectral_eps)
        eigvals = torch.linalg.eigvals(dmd.reduced)
        mask = static_mask(eigvals.detach(), xi, min_static)
        return spectral_terms(eigvals, mask, bound)


def spectrum_statistics(eigvals: Tensor, mask: Tensor) -> dict:
    """Logged summary of a spectrum ``(..., r)`` and its static mask:
    ``num_static_modes``, ``num_dynamic_modes`` (means over clips),
    ``eig_static_dist`` (mean ``|lambda - 1|`` of the static modes),
    ``eig_dynamic_dist_min`` (smallest ``|lambda - 1|`` of a dynamic mode),
    ``eig_dist_median``; float32 scalars without gradient."""
    distance = (eigvals.detach() - 1).abs().double()
    static = mask.to(distance.dtype)
    inf = torch.full_like(distance, float('inf'))
    dynamic_min = torch.where(mask, inf, distance).min()
    return dict(
        num_static_modes=static.sum(-1).float().mean(),
        num_dynamic_modes=(1 - static).sum(-1).float().mean(),
        eig_static_dist=((distance * static).sum() /
                         static.sum().clamp_min(1)).float(),
        eig_dynamic_dist_min=torch.nan_to_num(dynamic_min,
                                              posinf=0.0).float(),
        eig_dist_median=distance.median().float())
