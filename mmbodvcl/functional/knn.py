"""Nearest-neighbour evaluation of frozen video features, in pure PyTorch.

Shared by the kNN monitor hook (weighted kNN classification, Wu et al.,
"Unsupervised Feature Learning via Non-Parametric Instance Discrimination",
CVPR 2018) and the retrieval metric (recall at k).

Shapes: N = videos, V = clips per video, D = feature size, B = bank (train
or gallery) size, Q = queries, C = classes. Similarities are cosines in fp32
whatever the feature dtype; queries are processed in chunks so the Q x B
similarity matrix never exists whole.
"""
from typing import Callable, Dict, Iterator, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

BackboneOutput = Union[Tensor, Sequence[Tensor]]


def pool_backbone_output(output: BackboneOutput) -> Tensor:
    """Global average over every dimension after the channels.

    Args:
        output: ``(N, C, ...)`` (e.g. ``(N, C, T, H, W)``), or a tuple/list
            of them (e.g. the slow and fast pathways of SlowFast), each
            pooled and concatenated along the channels as MMAction2's
            SlowFast head does.

    Returns:
        ``(N, sum C)``.
    """
    if isinstance(output, (tuple, list)):
        if not output:
            raise ValueError('the backbone returned an empty tuple')
        return torch.cat([pool_backbone_output(part) for part in output], 1)
    if not isinstance(output, Tensor) or output.ndim < 2:
        shape = getattr(output, 'shape', None)
        raise TypeError(f'expected backbone features (N, C, ...) or a tuple '
                        f'of them, got {type(output).__name__} {shape}')
    return output.flatten(2).mean(-1) if output.ndim > 2 else output


def as_clip_batch(inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
    """Preprocessed inputs as ``(N, V, C, T, H, W)``.

    Accepts what MMAction2's ``ActionDataPreprocessor`` returns for
    ``'NCTHW'`` (``(N, V, C, T, H, W)``, V = clips x crops), a single clip per
    video ``(N, C, T, H, W)``, and the multi-view preprocessor's list of V
    tensors ``(N, C, T, H, W)``.
    """
    if isinstance(inputs, (tuple, list)):
        inputs = torch.stack(list(inputs), dim=1)
    if not isinstance(inputs, Tensor) or inputs.ndim not in (5, 6):
        shape = getattr(inputs, 'shape', None)
        raise ValueError(f'expected clips (N, C, T, H, W) or (N, V, C, T, H, '
                         f'W), or a list of (N, C, T, H, W), got {shape}')
    return inputs.unsqueeze(1) if inputs.ndim == 5 else inputs


def encode_clips(backbone: Callable[[Tensor], BackboneOutput],
                 inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
    """Pooled backbone features of every clip, averaged over each video's
    clips (the usual multi-clip protocol of video retrieval).

    Args:
        backbone: ``(M, C, T, H, W) -> (M, C', ...)`` or a tuple of them.
        inputs: See :func:`as_clip_batch`.

    Returns:
        ``(N, D)``.
    """
    clips = as_clip_batch(inputs)
    num_videos, num_clips = clips.shape[:2]
    features = pool_backbone_output(backbone(clips.flatten(0, 1)))
    return features.reshape(num_videos, num_clips, -1).mean(1)


def _check(features: Tensor, labels: Optional[Tensor], name: str) -> None:
    """Refuse empty, mis-shaped or non-finite features (and labels that do
    not match them)."""
    if features.ndim != 2 or len(features) == 0:
        raise ValueError(f'{name}: expected a non-empty (N, D) tensor, got '
                         f'shape {tuple(features.shape)}')
    if labels is not None and (labels.ndim != 1
                               or len(labels) != len(features)):
        raise ValueError(f'{name}: expected labels ({len(features)},), got '
                         f'shape {tuple(labels.shape)}')
    if not torch.isfinite(features).all():
        raise ValueError(f'{name} contain NaN or Inf')


def _chunks(queries: Tensor, bank: Tensor,
            chunk_size: int) -> Iterator[Tuple[slice, Tensor]]:
    """Yield ``(rows, cosine similarity of those query rows to the bank)``."""
    if chunk_size < 1:
        raise ValueError(f'chunk_size={chunk_size!r} must be >= 1')
    if queries.shape[1] != bank.shape[1]:
        raise ValueError(f'query features have {queries.shape[1]} channels, '
                         f'the bank {bank.shape[1]}')
    bank = F.normalize(bank.float(), dim=1)
    for start in range(0, len(queries), chunk_size):
        rows = slice(start, start + chunk_size)
        yield rows, F.normalize(queries[rows].float(), dim=1) @ bank.T


def _hit_rates(hits: Tensor, topk: Sequence[int]) -> Dict[int, float]:
    """``{k: share of rows with a hit among their first k columns}``,
    counted exactly (no float32 mean)."""
    return {k: hits[:, :k].any(1).sum().item() / len(hits) for k in topk}


def knn_class_scores(queries: Tensor,
                     bank: Tensor,
                     bank_labels: Tensor,
                     num_classes: int,
                     k: int = 20,
                     temperature: float = 0.07,
                     chunk_size: int = 1024) -> Tensor:
    """Weighted kNN votes: each of a query's ``k`` most cosine-similar bank
    samples votes for its class with weight ``exp(similarity /
    temperature)``, scaled per query by ``exp(-max similarity /
    temperature)`` (the ranking of the classes is unchanged, and no weight
    overflows or all underflow at small temperatures).

    Args:
        queries: ``(Q, D)``.
        bank: ``(B, D)``.
        bank_labels: ``(B,)`` class indices in ``[0, num_classes)``.
        num_classes: C.
        k: Neighbours (at most B are used).
        temperature: Sharpness of the vote weights.
        chunk_size: Queries per similarity block.

    Returns:
        ``(Q, C)`` votes, 0 for classes no neighbour belongs to.
    """
    _check(queries, None, 'query features')
    _check(bank, bank_labels, 'bank features')
    if k < 1 or temperature <= 0:
        raise ValueError(f'need k >= 1 and temperature > 0, got k={k!r}, '
                         f'temperature={temperature!r}')
    if bank_labels.min() < 0 or bank_labels.max() >= num_classes:
        raise ValueError(f'bank labels must lie in [0, {num_classes}), got '
                         f'[{int(bank_labels.min())}, '
                         f'{int(bank_labels.max())}]')
    bank_labels = bank_labels.to(bank.device, torch.long)
    scores = queries.new_zeros(len(queries), num_classes, dtype=torch.float)
    for rows, similarity in _chunks(queries, bank, chunk_size):
        top, index = similarity.topk(min(k, len(bank)), dim=1)
        weights = ((top - top[:, :1]) / temperature).exp()
        scores[rows].scatter_add_(1, bank_labels[index], weights)
    return scores


def topk_accuracy(scores: Tensor,
                  labels: Tensor,
                  topk: Sequence[int] = (1, 5)) -> Dict[int, float]:
    """Share of rows whose label is among the ``k`` highest-scoring classes
    with a positive score (a class that got no vote is never a hit).

    Returns:
        ``{k: accuracy in [0, 1]}``.
    """
    _check(scores, labels, 'kNN scores')
    labels = labels.to(scores.device, torch.long).unsqueeze(1)
    top, index = scores.topk(min(max(topk), scores.shape[1]), dim=1)
    hits = (index == labels) & (top > 0)
    return _hit_rates(hits, topk)


def retrieval_recall(queries: Tensor,
                     query_labels: Tensor,
                     gallery: Tensor,
                     gallery_labels: Tensor,
                     topk: Sequence[int] = (1, 5, 10, 20),
                     chunk_size: int = 1024) -> Dict[int, float]:
    """Recall at k of class-level retrieval: a query is a hit at ``k`` when
    any of its ``k`` most cosine-similar gallery samples has its class.

    Returns:
        ``{k: recall in [0, 1]}``.
    """
    _check(queries, query_labels, 'query features')
    _check(gallery, gallery_labels, 'gallery features')
    gallery_labels = gallery_labels.to(gallery.device, torch.long)
    query_labels = query_labels.to(gallery.device, torch.long)
    max_k = min(max(topk), len(gallery))
    hits = []
    for rows, similarity in _chunks(queries, gallery, chunk_size):
        index = similarity.topk(max_k, dim=1).indices
        hits.append(gallery_labels[index] == query_labels[rows, None])
    hits = torch.cat(hits)
    return _hit_rates(hits, topk)
