"""Tests of mmbodvcl.functional.contrastive against hand computations and
against a real two-process gloo group."""
import math
import os
import tempfile

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from helpers import free_port, gloo_rank
from mmbodvcl.functional.contrastive import (all_gather_with_grad,
                                             batch_shuffle, batch_unshuffle,
                                             byol_loss, info_nce,
                                             multi_view_info_nce,
                                             queue_info_nce, sinkhorn_knopp,
                                             swapped_prediction_loss)


def test_info_nce_matches_hand_computed_example():
    # Two videos, two views, unit vectors at known angles.
    a = torch.tensor([1.0, 0.0])
    b = torch.tensor([math.cos(0.5), math.sin(0.5)])
    c = torch.tensor([0.0, 1.0])
    d = torch.tensor([-1.0, 0.0])
    views = torch.stack([torch.stack([a, c]), torch.stack([b, d])])  # V,N,D
    t = 0.5
    # Anchor a (video 0, view 0): positive b; negatives c, d.
    sim = {('a', 'b'): math.cos(0.5), ('a', 'c'): 0.0, ('a', 'd'): -1.0,
           ('b', 'c'): math.sin(0.5), ('b', 'd'): -math.cos(0.5),
           ('c', 'd'): 0.0}

    def s(x, y):
        return sim.get((x, y), sim.get((y, x)))

    def term(anchor, positive, negatives):
        pos = math.exp(s(anchor, positive) / t)
        return -math.log(pos / (pos + sum(
            math.exp(s(anchor, n) / t) for n in negatives)))

    expected = (term('a', 'b', 'cd') + term('b', 'a', 'cd') +
                term('c', 'd', 'ab') + term('d', 'c', 'ab')) / 4
    got = multi_view_info_nce(views, temperature=t)
    assert got.item() == pytest.approx(expected, rel=1e-5)


def test_info_nce_sums_several_positives_inside_the_log():
    anchors = torch.tensor([[1.0, 0.0]])
    candidates = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    positive = torch.tensor([[True, True, False]])
    got = info_nce(anchors, candidates, positive, temperature=1.0)
    e = math.e
    expected = -math.log((e + 1) / (e + 1 + 1 / e))
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_info_nce_refuses_anchor_without_positive():
    with pytest.raises(ValueError, match='at least one positive'):
        info_nce(torch.randn(2, 4), torch.randn(3, 4),
                 torch.tensor([[True, False, False], [False] * 3]), 0.1)
    with pytest.raises(ValueError, match='>= 2 views'):
        multi_view_info_nce(torch.randn(1, 4, 8), 0.1)


def test_multi_view_info_nce_prefers_aligned_views_and_has_finite_grad():
    torch.manual_seed(0)
    base = torch.randn(1, 8, 16)
    aligned = (base + 0.01 * torch.randn(4, 8, 16)).requires_grad_()
    random = torch.randn(4, 8, 16)
    loss_aligned = multi_view_info_nce(aligned, 0.1)
    assert loss_aligned < multi_view_info_nce(random, 0.1)
    loss_aligned.backward()
    assert torch.isfinite(aligned.grad).all()
    # Identical embeddings for every video: finite (log of the share of
    # positives), no NaN.
    same = torch.ones(2, 4, 8, requires_grad=True)
    loss = multi_view_info_nce(same, 0.1)
    loss.backward()
    assert loss.item() == pytest.approx(-math.log(1 / 7), rel=1e-5)
    assert torch.isfinite(same.grad).all()


def test_queue_info_nce_uses_other_view_keys_and_queue():
    q = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])  # V=2, N=1
    k = torch.tensor([[[0.0, 1.0]], [[1.0, 0.0]]])
    queue = torch.tensor([[-1.0, 0.0], [0.0, -1.0]])
    t = 1.0
    # Query view 0 = (1,0): positive key of view 1 = (1,0) -> cos 1;
    # its own view's key (0,1) is excluded; queue cos -1 and 0.
    e = math.e
    expected = -math.log(e / (e + 1 / e + 1))
    got = queue_info_nce(q, k, queue, temperature=t)
    assert got.item() == pytest.approx(expected, rel=1e-6)


def test_byol_loss_bounds_and_pairs():
    x = torch.randn(2, 5, 8)
    assert byol_loss(x, x.flip(0)).item() == pytest.approx(0.0, abs=1e-6)
    assert byol_loss(x, -x.flip(0)).item() == pytest.approx(4.0, abs=1e-5)
    with pytest.raises(ValueError, match='must match'):
        byol_loss(x, torch.randn(2, 5, 7))


def _reference_sinkhorn(scores: np.ndarray, epsilon: float,
                        num_iters: int) -> np.ndarray:
    """SwAV's published algorithm, in float64 NumPy."""
    q = np.exp(scores / epsilon).T  # K x B
    num_prototypes, batch = q.shape
    q /= q.sum()
    for _ in range(num_iters):
        q /= q.sum(axis=1, keepdims=True)
        q /= num_prototypes
        q /= q.sum(axis=0, keepdims=True)
        q /= batch
    return (q * batch).T


def test_sinkhorn_matches_reference_and_marginals():
    torch.manual_seed(0)
    scores = F.normalize(torch.randn(64, 10), dim=1)
    codes = sinkhorn_knopp(scores, epsilon=0.05, num_iters=3)
    reference = _reference_sinkhorn(scores.double().numpy(), 0.05, 3)
    np.testing.assert_allclose(codes.numpy(), reference, atol=1e-5)
    assert torch.allclose(codes.sum(1), torch.ones(64), atol=1e-5)
    # Equipartition: each of the 10 prototypes tends to 64 / 10 samples.
    imbalance = [(sinkhorn_knopp(scores, 0.05, n).sum(0) - 6.4).abs().max()
                 for n in (1, 3, 10, 50)]
    assert imbalance[0] > imbalance[1] > imbalance[2] > imbalance[3]
    assert imbalance[3] < 1e-2
    # Scores far beyond exp's range stay finite (log domain).
    huge = sinkhorn_knopp(scores * 1e3, epsilon=0.05, num_iters=3)
    assert torch.isfinite(huge).all()
    assert torch.allclose(huge.sum(1), torch.ones(64), atol=1e-5)
    with pytest.raises(ValueError, match='epsilon'):
        sinkhorn_knopp(scores, epsilon=0.0, num_iters=3)


def test_swapped_prediction_loss_is_minimal_for_consistent_views():
    codes = torch.eye(4).expand(2, 4, 4)
    confident = 10 * torch.eye(4).expand(2, 4, 4)
    wrong = 10 * torch.eye(4).roll(1, dims=1).expand(2, 4, 4)
    good = swapped_prediction_loss(confident, codes, temperature=1.0)
    bad = swapped_prediction_loss(wrong, codes, temperature=1.0)
    assert good < 1e-3 < bad


def _gather_worker(rank: int, world_size: int, port: int,
                   out_dir: str) -> None:
    with gloo_rank(rank, world_size, port):
        dist.init_process_group('gloo')
        torch.manual_seed(0)
        full = torch.randn(world_size * 3, 2, 6)  # (W*N, V, D), same on all
        local = full[rank * 3:(rank + 1) * 3].clone().requires_grad_()
        views = local.transpose(0, 1)  # (V, N, D)
        loss = multi_view_info_nce(views, temperature=0.2)
        loss.backward()
        gathered = all_gather_with_grad(local.detach())
        x = torch.arange(4.0).reshape(4, 1) + 10 * rank
        shuffled, index = batch_shuffle(x)
        restored = batch_unshuffle(shuffled * 2, index)
        codes = sinkhorn_knopp(
            views[0].detach() @ views[1].detach().t(), 0.05, 3)
    torch.save(dict(loss=loss.detach(), grad=local.grad, gathered=gathered,
                    restored=restored, x=x, codes=codes),
               os.path.join(out_dir, f'{rank}.pt'))


def test_cross_rank_gather_matches_single_process():
    """Two gloo ranks: the mean of the ranks' losses and the gradients equal
    one process on the whole batch (gather keeps gradients)."""
    world_size = 2
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_gather_worker, args=(world_size, free_port(), out_dir),
                 nprocs=world_size)
        results = [torch.load(os.path.join(out_dir, f'{r}.pt'))
                   for r in range(world_size)]
    torch.manual_seed(0)
    full = torch.randn(world_size * 3, 2, 6).requires_grad_()
    reference = multi_view_info_nce(full.transpose(0, 1), temperature=0.2)
    reference.backward()
    mean_loss = sum(r['loss'] for r in results) / world_size
    assert mean_loss.item() == pytest.approx(reference.item(), rel=1e-5)
    # DDP averages gradients over ranks; the gather's backward sums them.
    grads = torch.cat([r['grad'] for r in results]) / world_size
    assert torch.allclose(grads, full.grad, atol=1e-6)
    assert torch.equal(results[0]['gathered'], full.detach())
    for r in results:
        assert torch.equal(r['restored'], 2 * r['x'])
        assert torch.isfinite(r['codes']).all()


def test_gather_with_grad_on_one_process_group():
    """A real process group of size one: gather is the identity, gradient
    flows."""
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_gather_worker, args=(1, free_port(), out_dir), nprocs=1)
        result = torch.load(os.path.join(out_dir, '0.pt'))
    torch.manual_seed(0)
    full = torch.randn(3, 2, 6).requires_grad_()
    multi_view_info_nce(full.transpose(0, 1), 0.2).backward()
    assert torch.allclose(result['grad'], full.grad, atol=1e-6)
    assert torch.equal(result['gathered'], full.detach())
    assert torch.equal(result['restored'], 2 * result['x'])
