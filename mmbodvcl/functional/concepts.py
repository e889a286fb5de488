"""Static and dynamic concepts (Qian et al., ECCV 2022), in pure PyTorch.

The mathematics of the peer method, sections 3.1-3.3; docs/concepts.md
describes the method and where we differ from the paper and from the
authors' code.

Shapes: P = inputs of one alignment group per video (e.g. a clip and its
static frame), N = videos per rank, K = concepts, D = embedding size,
L = spatio-temporal positions of a feature map, W = ranks.

Everything runs on one process and under ``torch.distributed`` (the
cross-rank parts fall back to the identity without a process group); losses
are computed in fp32 outside autocast.
"""
from typing import Optional

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor

from .contrastive import (_distributed, _rank, _world_size, all_gather_no_grad,
                          sinkhorn_knopp, swapped_prediction_loss)

#: How the prototype cross-attention normalises its weights.
ATTENTION_NORMS = ('locations', 'concepts')


def concept_scores(features: Tensor, prototypes: Tensor) -> Tensor:
    """Concept codes (eq. 3): cosine similarity of every feature to every
    prototype.

    Args:
        features: ``(..., D)``.
        prototypes: ``(K, D)``.

    Returns:
        ``(..., K)`` in [-1, 1].
    """
    with torch.autocast(device_type=features.device.type, enabled=False):
        return F.normalize(features.float(), dim=-1) @ F.normalize(
            prototypes.float(), dim=-1).t()


@torch.no_grad()
def sinkhorn_codes(scores: Tensor,
                   epsilon: float,
                   num_iters: int,
                   history: Optional[Tensor] = None) -> Tensor:
    """Soft codes of ``scores (N, K)`` under a uniform prior over concepts.

    With ``history (L, K)`` (scores of earlier batches, the authors' queue)
    the equipartition runs over the batch and the history together, which
    keeps it meaningful for small batches; only the batch's rows are
    returned. Sums over samples are all-reduced across ranks
    (:func:`~mmbodvcl.functional.contrastive.sinkhorn_knopp`).

    Returns:
        ``(N, K)``, every row summing to one.
    """
    if history is None or history.shape[0] == 0:
        return sinkhorn_knopp(scores, epsilon, num_iters)
    if history.shape[-1] != scores.shape[-1]:
        raise ValueError(f'history has K={history.shape[-1]} concepts, '
                         f'scores K={scores.shape[-1]}')
    joint = torch.cat([scores, history.to(scores.dtype)])
    return sinkhorn_knopp(joint, epsilon, num_iters)[:scores.shape[0]]


def concept_alignment_loss(scores: Tensor,
                           temperature: float,
                           epsilon: float,
                           num_iters: int,
                           history: Optional[Tensor] = None) -> Tensor:
    """Concept alignment (eq. 4): the Sinkhorn codes of each input of a group
    are predicted by the temperature softmax of every other input's codes.

    A group shares one kind of content: a clip and its static frame for
    static concepts, a clip and its frame difference for dynamic ones.

    Args:
        scores: ``(P, N, K)`` concept codes, P >= 2.
        temperature: Softmax temperature > 0.
        epsilon: Sinkhorn's entropic regularisation > 0.
        num_iters: Sinkhorn rounds >= 1.
        history: Optional ``(L, K)`` earlier codes for the Sinkhorn prior.

    Returns:
        Scalar cross-entropy averaged over ordered pairs and videos.
    """
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    codes = torch.stack([
        sinkhorn_codes(group.detach(), epsilon, num_iters, history)
        for group in scores
    ])
    return swapped_prediction_loss(scores, codes, temperature)


def negative_entropy(scores: Tensor, temperature: float) -> Tensor:
    """Mean ``sum_k p_k log p_k`` of ``softmax(scores / temperature)`` over
    the last dim: minimising it flattens the distribution (the authors'
    entropy term on the concepts an input cannot carry)."""
    if temperature <= 0:
        raise ValueError(f'temperature must be > 0, got {temperature}')
    with torch.autocast(device_type=scores.device.type, enabled=False):
        log_prob = F.log_softmax(scores.float() / temperature, dim=-1)
        return (log_prob.exp() * log_prob).sum(-1).mean()


def concept_sparsity(codes: Tensor) -> Tensor:
    """Diversity (eq. 5): the L1 norm of the codes divided by their number
    K (mean ``|c|``), so that its scale does not depend on K."""
    return codes.float().abs().mean()


def reconstruction_loss(reconstruction: Tensor, target: Tensor) -> Tensor:
    """Fidelity (eq. 6): squared L2 distance between the unit-normalised
    reconstruction and the unit-normalised target, ``2 - 2 cos``, averaged
    over samples. No gradient reaches ``target`` (stop-gradient).

    Args:
        reconstruction: ``(..., C)`` decoded from the codes.
        target: ``(..., C)`` the features the codes came from.
    """
    if reconstruction.shape != target.shape:
        raise ValueError(f'reconstruction {tuple(reconstruction.shape)} '
                         f'must match target {tuple(target.shape)}')
    with torch.autocast(device_type=reconstruction.device.type, enabled=False):
        difference = F.normalize(reconstruction.float(), dim=-1) - (
            F.normalize(target.detach().float(), dim=-1))
        return difference.pow(2).sum(-1).mean()


def top_k_mask(codes: Tensor, k: int) -> Tensor:
    """``(N, K)`` bool, True at the k largest codes of every row (ties broken
    by :func:`torch.topk`)."""
    if not 1 <= k <= codes.shape[-1]:
        raise ValueError(f'k must be in [1, {codes.shape[-1]}], got {k}')
    index = codes.detach().topk(k, dim=-1).indices
    return torch.zeros_like(codes, dtype=torch.bool).scatter_(-1, index, True)


def valid_concepts(codes_a: Tensor, codes_b: Tensor, k: int) -> Tensor:
    """Valid concepts (eq. 8): those among the top k of both inputs.

    Args:
        codes_a, codes_b: ``(N, K)`` concept codes of two inputs of the same
            videos.
        k: Concepts kept per input.

    Returns:
        ``(N, K)`` bool.
    """
    if codes_a.shape != codes_b.shape:
        raise ValueError(f'codes {tuple(codes_a.shape)} and '
                         f'{tuple(codes_b.shape)} must match')
    return top_k_mask(codes_a, k) & top_k_mask(codes_b, k)


def concept_cross_attention(queries: Tensor,
                            keys: Tensor,
                            values: Tensor,
                            residual: Tensor,
                            normalize: str = 'locations') -> Tensor:
    """Local features of every concept (eq. 7): single-head attention of the
    (projected) prototypes over the positions of a feature map, plus a
    residual.

    Args:
        queries: ``(K, D)`` projected prototypes (shared by the batch).
        keys: ``(N, L, D)``; values: ``(N, L, D)``.
        residual: ``(K, D)`` added to every video's output.
        normalize: ``'locations'``: softmax over the L positions of each
            concept (standard attention, the paper's description);
            ``'concepts'``: softmax over the K concepts at each position,
            then each concept's weights rescaled to sum to one over
            positions (the authors' code, after Weinzaepfel et al.'s
            super-features: concepts compete for positions).

    Returns:
        ``(N, K, D)``.
    """
    if normalize not in ATTENTION_NORMS:
        raise ValueError(f'normalize must be one of {ATTENTION_NORMS}, got '
                         f'{normalize!r}')
    scale = queries.shape[-1]**-0.5
    logits = torch.einsum('kd,nld->nkl', queries, keys) * scale
    if normalize == 'locations':
        weights = logits.softmax(dim=-1)
    else:
        weights = logits.softmax(dim=1)
        weights = weights / weights.sum(dim=-1, keepdim=True).clamp_min(
            torch.finfo(weights.dtype).tiny)
    return torch.einsum('nkl,nld->nkd', weights, values) + residual


def _squared_pair_distance(queries: Tensor, keys: Tensor,
                           eps: float) -> Tensor:
    """``(N, K, D)``, ``(M, K, D)`` -> ``(N, M, K)`` squared Euclidean
    distances of the unit-normalised features of each concept, ``2 - 2 cos``,
    plus ``eps`` (which keeps the square root's gradient bounded where
    features coincide)."""
    cosine = torch.einsum('nkd,mkd->nmk', F.normalize(queries, dim=-1),
                          F.normalize(keys, dim=-1))
    return (2 - 2 * cosine).clamp_min(0) + eps


def local_concept_contrast(queries: Tensor,
                           keys: Tensor,
                           valid: Tensor,
                           margin: float,
                           eps: float = 1e-5) -> Tensor:
    """Local concept contrast (eq. 9), one direction.

    For every valid concept k of video i: the squared distance ``d^2`` between
    the query's and the key's local feature of k for video i (positive pair),
    plus the mean over all other videos j of the batch (every rank) of
    ``max(0, margin - d(query_i^k, key_j^k))^2`` (negatives). Keys get no
    gradient; call it both ways for a symmetric loss.

    The loss is averaged over the valid pairs of all ranks (the count is
    all-reduced), so that DDP's gradient averaging gives the gradient of the
    whole batch's mean.

    Args:
        queries: ``(N, K, D)`` local features of one input.
        keys: ``(N, K, D)`` local features of the other input of the same
            videos.
        valid: ``(N, K)`` bool from :func:`valid_concepts`.
        margin: ``m`` > 0 (distances of unit vectors lie in [0, 2]).
        eps: Added to ``d^2`` (> 0: bounds the gradient of ``d``).

    Returns:
        Scalar; zero (attached to the graph) without valid pairs.
    """
    if margin <= 0 or eps <= 0:
        raise ValueError(f'margin and eps must be > 0, got margin={margin}, '
                         f'eps={eps}')
    if queries.shape != keys.shape or valid.shape != queries.shape[:2]:
        raise ValueError(f'queries {tuple(queries.shape)}, keys '
                         f'{tuple(keys.shape)} and valid '
                         f'{tuple(valid.shape)} must be (N, K, D), (N, K, D) '
                         f'and (N, K)')
    batch_size = queries.shape[0]
    with torch.autocast(device_type=queries.device.type, enabled=False):
        candidates = all_gather_no_grad(keys.detach().float())
        squared = _squared_pair_distance(queries.float(), candidates, eps)
        own = _rank() * batch_size + torch.arange(batch_size,
                                                  device=queries.device)
        positive = squared[torch.arange(batch_size), own]
        is_own = F.one_hot(own, candidates.shape[0]).bool()[..., None]
        num_others = max(candidates.shape[0] - 1, 1)
        negative = (F.relu(margin - squared.sqrt()).pow(2).masked_fill(
            is_own, 0).sum(1) / num_others)
        total = ((positive + negative) * valid).sum()
    count = valid.sum().float()
    if _distributed():
        dist.all_reduce(count)
    return total * _world_size() / count.clamp_min(1)
