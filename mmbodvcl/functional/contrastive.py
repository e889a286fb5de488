"""Contrastive objectives over video views, in pure PyTorch.

Shapes: V = views per video (the paper's rho), N = videos per rank,
D = embedding size, K = queue length or number of prototypes, W = ranks.
Embeddings of V views are passed as one ``Tensor(V, N, D)``: row ``i`` of
every view belongs to video ``i``.

Everything here works on one process and under ``torch.distributed``: the
cross-rank operations fall back to the identity when no process group is
initialised. Losses are computed in fp32 outside autocast.
"""
import math
from typing import Optional, Tuple

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def _world_size() -> int:
    return dist.get_world_size() if _distributed() else 1


def _rank() -> int:
    return dist.get_rank() if _distributed() else 0


class _GatherWithGrad(torch.autograd.Function):
    """All-gather along dim 0 whose backward returns each rank's share of the
    gradient summed over all ranks (every rank's loss depends on every
    rank's embeddings)."""

    @staticmethod
    def forward(ctx, tensor: Tensor) -> Tensor:
        ctx.batch_size = tensor.shape[0]
        gathered = [torch.empty_like(tensor) for _ in range(_world_size())]
        dist.all_gather(gathered, tensor.contiguous())
        return torch.cat(gathered, dim=0)

    @staticmethod
    def backward(ctx, grad_output: Tensor) -> Tensor:
        grad = grad_output.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = _rank() * ctx.batch_size
        return grad[start:start + ctx.batch_size]


def all_gather_with_grad(tensor: Tensor) -> Tensor:
    """Concatenate ``tensor`` (B, ...) of every rank along dim 0, keeping the
    autograd graph: ``(W * B, ...)``, this rank's rows at
    ``rank * B : (rank + 1) * B``. Every rank must pass the same B.

    Combined with DDP's gradient averaging, the parameters receive the
    gradient of the mean of the ranks' losses. On one process it returns
    ``tensor`` itself.
    """
    if _world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


@torch.no_grad()
def all_gather_no_grad(tensor: Tensor) -> Tensor:
    """``all_gather_with_grad`` for tensors that need no gradient (queue
    keys, shuffle indices)."""
    if _world_size() == 1:
        return tensor
    gathered = [torch.empty_like(tensor) for _ in range(_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return torch.cat(gathered, dim=0)


@torch.no_grad()
def batch_shuffle(inputs: Tensor) -> Tuple[Tensor, Tensor]:
    """Shuffle a batch across ranks so that BatchNorm statistics of a key
    encoder mix samples of other ranks (MoCo's shuffle-BN).

    Args:
        inputs: ``(B, ...)``, the same B on every rank.

    Returns:
        ``(shuffled (B, ...), unshuffle_index (W * B,))``; pass the index to
        :func:`batch_unshuffle` with the encoder's outputs.
    """
    batch_size = inputs.shape[0]
    gathered = all_gather_no_grad(inputs)
    permutation = torch.randperm(gathered.shape[0], device=inputs.device)
    if _distributed():
        dist.broadcast(permutation, src=0)  # one permutation for all ranks
    start = _rank() * batch_size
    local = permutation[start:start + batch_size]
    return gathered[local], torch.argsort(permutation)


@torch.no_grad()
def batch_unshuffle(outputs: Tensor, unshuffle_index: Tensor) -> Tensor:
    """Undo :func:`batch_shuffle` on ``outputs (B, ...)``: row ``b`` of the
    result belongs to input row ``b`` of this rank."""
    batch_size = outputs.shape[0]
    gathered = all_gather_no_grad(outputs)
    start = _rank() * batch_size
    return gathered[unshuffle_index[start:start + batch_size]]


def info_nce(anchors: Tensor,
             candidates: Tensor,
             positive_mask: Tensor,
             temperature: float,
             valid_mask: Optional[Tensor] = None) -> Tensor:
    """Multi-positive InfoNCE with cosine similarity (paper eq. 1), averaged
    over anchors (eq. 2).

    For anchor ``a``: ``-log(sum_pos exp(s/t) / sum_valid exp(s/t))``, where
    ``s`` is the cosine similarity and the positives are part of the valid
    candidates.

    Args:
        anchors: ``(A, D)``.
        candidates: ``(B, D)``.
        positive_mask: ``(A, B)`` bool, the positives of each anchor; every
            anchor needs at least one.
        temperature: ``alpha`` > 0.
        valid_mask: ``(A, B)`` bool, positives and negatives of each anchor
            (e.g. excluding the anchor itself); all candidates if None.

    Returns:
        Scalar loss.
    """
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    if not bool(positive_mask.any(dim=1).all()):
        raise ValueError('every anchor needs at least one positive; got an '
                         'anchor without any (fewer than 2 views?)')
    if valid_mask is None:
        valid_mask = torch.ones_like(positive_mask)
    valid_mask = valid_mask | positive_mask
    with torch.autocast(device_type=anchors.device.type, enabled=False):
        logits = F.normalize(anchors.float(), dim=1) @ F.normalize(
            candidates.float(), dim=1).t() / temperature
        # Masked entries get -inf, so they drop out of the log-sum-exps.
        log_all = logits.masked_fill(~valid_mask, float('-inf')).logsumexp(1)
        log_pos = logits.masked_fill(~positive_mask,
                                     float('-inf')).logsumexp(1)
        return (log_all - log_pos).mean()


def multi_view_info_nce(views: Tensor, temperature: float) -> Tensor:
    """V-SimCLR's objective: InfoNCE over all views of the batch (eq. 1-2).

    The positives of view j of video i are its other views; the negatives
    are all views of all other videos, gathered from every rank with
    gradients.

    Args:
        views: ``(V, N, D)`` with V >= 2.
        temperature: ``alpha``.

    Returns:
        Scalar loss, the mean over this rank's ``N * V`` anchors.
    """
    num_views, batch_size, dim = views.shape
    if num_views < 2:
        raise ValueError(f'InfoNCE over views needs >= 2 views, got '
                         f'{num_views}')
    # Video-major rows: video i, view j at row i * V + j.
    anchors = views.transpose(0, 1).reshape(batch_size * num_views, dim)
    candidates = all_gather_with_grad(anchors)
    device = views.device
    candidate_video = torch.arange(
        candidates.shape[0] // num_views,
        device=device).repeat_interleave(num_views)
    anchor_video = (_rank() * batch_size + torch.arange(
        batch_size, device=device)).repeat_interleave(num_views)
    anchor_index = _rank() * anchors.shape[0] + torch.arange(
        anchors.shape[0], device=device)
    not_self = torch.ones(
        anchors.shape[0], candidates.shape[0], dtype=torch.bool,
        device=device)
    not_self[torch.arange(anchors.shape[0], device=device),
             anchor_index] = False
    positive = (anchor_video[:, None] == candidate_video[None]) & not_self
    return info_nce(anchors, candidates, positive, temperature, not_self)


def queue_info_nce(queries: Tensor, keys: Tensor, queue: Tensor,
                   temperature: float) -> Tensor:
    """V-MoCo's objective: InfoNCE of each query against the momentum keys
    of the other views of its video (positives) and a queue of past keys
    (negatives).

    Args:
        queries: ``(V, N, D)`` from the online encoder.
        keys: ``(V, N, D)`` from the momentum encoder (no gradient needed).
        queue: ``(K, D)`` negatives.
        temperature: ``alpha``.

    Returns:
        Scalar loss, the mean over the ``N * V`` queries.
    """
    num_views, batch_size, dim = queries.shape
    if num_views < 2:
        raise ValueError(f'MoCo over views needs >= 2 views, got '
                         f'{num_views}')
    if keys.shape != queries.shape:
        raise ValueError(f'keys {tuple(keys.shape)} must match queries '
                         f'{tuple(queries.shape)}')
    anchors = queries.transpose(0, 1).reshape(batch_size * num_views, dim)
    batch_keys = keys.transpose(0, 1).reshape(batch_size * num_views, dim)
    candidates = torch.cat([batch_keys.detach(), queue.detach()], dim=0)
    device = queries.device
    video = torch.arange(batch_size, device=device).repeat_interleave(
        num_views)
    same_video = video[:, None] == video[None]
    other_view = ~torch.eye(len(video), dtype=torch.bool, device=device)
    positive = torch.zeros(
        len(video), candidates.shape[0], dtype=torch.bool, device=device)
    positive[:, :len(video)] = same_video & other_view
    valid = positive.clone()
    valid[:, len(video):] = True  # the queue: negatives of every query
    return info_nce(anchors, candidates, positive, temperature, valid)


def byol_loss(predictions: Tensor, targets: Tensor) -> Tensor:
    """V-BYOL's objective: ``2 - 2 cos(p_j, t_k)`` averaged over all pairs
    of different views ``j != k`` of each video (eq. 4 as a loss).

    Args:
        predictions: ``(V, N, D)`` online predictions.
        targets: ``(V, N, D)`` momentum-encoder projections.

    Returns:
        Scalar loss in [0, 4].
    """
    num_views = predictions.shape[0]
    if num_views < 2:
        raise ValueError(f'BYOL over views needs >= 2 views, got {num_views}')
    if targets.shape != predictions.shape:
        raise ValueError(f'targets {tuple(targets.shape)} must match '
                         f'predictions {tuple(predictions.shape)}')
    with torch.autocast(device_type=predictions.device.type, enabled=False):
        p = F.normalize(predictions.float(), dim=-1)
        t = F.normalize(targets.detach().float(), dim=-1)
        cosine = torch.einsum('jnd,knd->jkn', p, t)  # (V, V, N)
        off_diagonal = ~torch.eye(
            num_views, dtype=torch.bool, device=p.device)
        return (2 - 2 * cosine[off_diagonal]).mean()


def _logsumexp_all_ranks(tensor: Tensor, dim: int) -> Tensor:
    """``logsumexp`` along ``dim`` over the concatenation of all ranks'
    tensors (keepdim)."""
    peak = tensor.amax(dim=dim, keepdim=True)
    if _distributed():
        dist.all_reduce(peak, op=dist.ReduceOp.MAX)
    peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = torch.exp(tensor - peak).sum(dim=dim, keepdim=True)
    if _distributed():
        dist.all_reduce(total)
    return total.log() + peak


@torch.no_grad()
def sinkhorn_knopp(scores: Tensor, epsilon: float,
                   num_iters: int) -> Tensor:
    """Soft equipartitioned assignments of samples to prototypes (SwAV).

    Alternately normalises ``exp(scores / epsilon)`` so that every prototype
    receives the same mass over the whole (all-rank) batch and every sample
    distributes a mass of one; the prototype sums run over all ranks. Works
    in the log domain, so large ``scores / epsilon`` cannot overflow or
    underflow to an empty sample.

    Args:
        scores: ``(B, K)`` similarities of B samples to K prototypes.
        epsilon: Entropic regularisation > 0.
        num_iters: Number of prototype/sample normalisation rounds >= 1.

    Returns:
        ``(B, K)`` codes: each row sums to 1 (exact after the last round),
        each column to about ``W * B / K`` over all ranks.
    """
    if epsilon <= 0 or num_iters < 1:
        raise ValueError(f'need epsilon > 0 and num_iters >= 1, got '
                         f'epsilon={epsilon}, num_iters={num_iters}')
    with torch.autocast(device_type=scores.device.type, enabled=False):
        log_codes = scores.float().t() / epsilon  # (K, B)
        num_prototypes = log_codes.shape[0]
        for _ in range(num_iters):
            # Every prototype gets 1/K of the mass ...
            log_codes = log_codes - _logsumexp_all_ranks(
                log_codes, dim=1) - math.log(num_prototypes)
            # ... and every sample a mass of one.
            log_codes = log_codes - log_codes.logsumexp(dim=0, keepdim=True)
        return log_codes.exp().t()


def swapped_prediction_loss(scores: Tensor, codes: Tensor,
                            temperature: float) -> Tensor:
    """SwAV's swapped prediction: the codes of view j are predicted from
    the prototype scores of every other view k, averaged over pairs.

    Args:
        scores: ``(V, N, K)`` cosine similarities to the prototypes.
        codes: ``(V, N, K)`` Sinkhorn codes (targets, no gradient).
        temperature: Softmax temperature > 0.

    Returns:
        Scalar cross-entropy.
    """
    num_views = scores.shape[0]
    if num_views < 2:
        raise ValueError(f'SwAV over views needs >= 2 views, got {num_views}')
    if codes.shape != scores.shape:
        raise ValueError(f'codes {tuple(codes.shape)} must match scores '
                         f'{tuple(scores.shape)}')
    with torch.autocast(device_type=scores.device.type, enabled=False):
        log_prob = F.log_softmax(scores.float() / temperature, dim=-1)
        cross = -torch.einsum('jnk,lnk->jln', codes.detach().float(),
                              log_prob)  # (V targets, V predictors, N)
        off_diagonal = ~torch.eye(
            num_views, dtype=torch.bool, device=scores.device)
        return cross[off_diagonal].mean()
