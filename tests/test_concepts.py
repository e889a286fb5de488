"""Static and Dynamic Concepts: every loss term against a hand computation,
the registered head and local-contrast module on tiny shapes, and the
cross-rank parts against a real two-process gloo group."""
import math
import os
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from mmengine.logging import MessageHub

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from mmbodvcl.functional.concepts import (concept_alignment_loss,
                                          concept_cross_attention,
                                          concept_scores, concept_sparsity,
                                          local_concept_contrast,
                                          negative_entropy,
                                          reconstruction_loss, sinkhorn_codes,
                                          top_k_mask, valid_concepts)
from mmbodvcl.functional.contrastive import sinkhorn_knopp
from mmbodvcl.models.heads import ConceptInput
from helpers import free_port, gloo_rank
# helpers of other test modules (pytest puts tests/ on sys.path)


# ----------------------------------------------------------------------
# pure functions
def test_concept_scores_are_cosines():
    features = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    prototypes = torch.tensor([[2.0, 0.0], [0.0, 3.0]])
    half = 1 / math.sqrt(2)
    expected = torch.tensor([[1.0, 0.0], [half, half]])
    assert torch.allclose(concept_scores(features, prototypes), expected)


def test_sinkhorn_codes_reach_uniform_marginals():
    torch.manual_seed(0)
    scores = F.normalize(torch.randn(12, 4), dim=1)
    codes = sinkhorn_codes(scores, epsilon=0.5, num_iters=200)
    # Every sample distributes a mass of one, every concept gets N / K.
    assert torch.allclose(codes.sum(1), torch.ones(12), atol=1e-5)
    assert torch.allclose(codes.sum(0), torch.full((4, ), 3.0), atol=1e-3)


def test_sinkhorn_codes_with_history_equipartition_batch_and_history():
    torch.manual_seed(0)
    scores, history = torch.randn(3, 5), torch.randn(7, 5)
    codes = sinkhorn_codes(scores, 0.05, 3, history)
    joint = sinkhorn_knopp(torch.cat([scores, history]), 0.05, 3)
    assert codes.shape == (3, 5)
    assert torch.equal(codes, joint[:3])
    assert torch.equal(sinkhorn_codes(scores, 0.05, 3, history[:0]),
                       sinkhorn_knopp(scores, 0.05, 3))
    with pytest.raises(ValueError, match='K=4'):
        sinkhorn_codes(scores, 0.05, 3, torch.randn(7, 4))


def test_alignment_cross_entropy_matches_hand_computation():
    # Symmetric score matrices already have equal column sums, so their
    # Sinkhorn codes are the row softmax of scores / epsilon.
    eps, tau = 0.5, 0.2
    first = torch.tensor([[0.9, 0.1], [0.1, 0.9]])
    second = torch.tensor([[0.6, 0.3], [0.3, 0.6]])
    scores = torch.stack([first, second]).requires_grad_()

    def cross(target, predictor):
        q = (target / eps).softmax(-1)
        return -(q * (predictor / tau).log_softmax(-1)).sum(-1).mean()

    expected = (cross(first, second) + cross(second, first)) / 2
    got = concept_alignment_loss(scores, tau, eps, num_iters=3)
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)
    got.backward()  # the codes are targets: the gradient is the softmax's
    assert torch.isfinite(scores.grad).all()
    with pytest.raises(ValueError, match='temperature'):
        concept_alignment_loss(scores, 0.0, eps, 3)


def test_negative_entropy_and_sparsity():
    uniform = torch.zeros(3, 4)
    assert negative_entropy(uniform, 0.1).item() == pytest.approx(-math.log(4),
                                                                  rel=1e-6)
    peaked = torch.tensor([[10.0, 0.0]])
    assert negative_entropy(peaked, 1.0).item() > -1e-3
    codes = torch.tensor([[0.5, -0.5], [0.0, 1.0]])
    assert concept_sparsity(codes).item() == pytest.approx(0.5)


def test_reconstruction_stops_gradient_at_the_target():
    prediction = torch.tensor([[1.0, 0.0]], requires_grad=True)
    target = torch.tensor([[0.0, 2.0]], requires_grad=True)
    loss = reconstruction_loss(prediction, target)
    assert loss.item() == pytest.approx(2.0)  # |(1,0) - (0,1)|^2
    loss.backward()
    assert target.grad is None
    assert torch.isfinite(prediction.grad).all()
    assert prediction.grad.abs().sum() > 0
    assert reconstruction_loss(target.detach(),
                               3 * target).item() == (pytest.approx(0.0,
                                                                    abs=1e-7))
    with pytest.raises(ValueError, match='must match'):
        reconstruction_loss(prediction, torch.zeros(1, 3))


def test_top_k_intersection():
    codes_a = torch.tensor([[0.9, 0.1, 0.8, 0.2], [0.1, 0.2, 0.3, 0.4]])
    codes_b = torch.tensor([[0.1, 0.9, 0.8, 0.7], [0.4, 0.3, 0.2, 0.1]])
    assert top_k_mask(codes_a, 2).tolist() == [[True, False, True, False],
                                               [False, False, True, True]]
    valid = valid_concepts(codes_a, codes_b, 2)
    assert valid.tolist() == [[False, False, True, False], [False] * 4]
    assert valid_concepts(codes_a, codes_b, 4).all()
    with pytest.raises(ValueError, match='k must be'):
        top_k_mask(codes_a, 5)


def test_cross_attention_by_hand():
    queries = torch.tensor([[1.0, 0.0]])  # K=1, D=2
    keys = torch.tensor([[[2.0, 0.0], [0.0, 0.0]]])  # N=1, L=2
    values = torch.tensor([[[1.0, 1.0], [3.0, -1.0]]])
    residual = torch.tensor([[10.0, 20.0]])
    # Softmax over positions of (2, 0) / sqrt(2).
    w = torch.tensor([2 / math.sqrt(2), 0.0]).softmax(0)
    expected = w[0] * values[0, 0] + w[1] * values[0, 1] + residual[0]
    got = concept_cross_attention(queries, keys, values, residual)
    assert torch.allclose(got[0, 0], expected)
    # Over concepts: one concept takes every position fully, then each
    # concept's weights are rescaled over positions: the mean value.
    got = concept_cross_attention(queries, keys, values, residual, 'concepts')
    assert torch.allclose(got[0, 0], values[0].mean(0) + residual[0])
    with pytest.raises(ValueError, match='normalize'):
        concept_cross_attention(queries, keys, values, residual, 'keys')


def test_margin_local_contrast_matches_hand_computation():
    margin, eps = 1.5, 1e-5
    queries = torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]], requires_grad=True)
    keys = torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]], requires_grad=True)
    valid = torch.ones(2, 1, dtype=torch.bool)
    # Video 0: positive at squared distance 0 (+ eps), its negative (key 1)
    # too. Video 1: positive at squared distance 2, its negative likewise.
    video0 = eps + (margin - math.sqrt(eps))**2
    video1 = 2 + eps + (margin - math.sqrt(2 + eps))**2
    got = local_concept_contrast(queries, keys, valid, margin, eps)
    assert got.item() == pytest.approx((video0 + video1) / 2, rel=1e-5)
    got.backward()
    assert keys.grad is None  # keys are stop-gradient
    assert torch.isfinite(queries.grad).all()
    # Only valid concepts count: the mean runs over them.
    only_first = torch.tensor([[True], [False]])
    assert local_concept_contrast(queries, keys, only_first, margin,
                                  eps).item() == pytest.approx(video0)
    none = local_concept_contrast(queries, keys, ~valid, margin)
    assert none.item() == 0.0 and none.requires_grad
    with pytest.raises(ValueError, match='margin'):
        local_concept_contrast(queries, keys, valid, 0.0)
    with pytest.raises(ValueError, match='eps'):
        local_concept_contrast(queries, keys, valid, margin, eps=0.0)


# ----------------------------------------------------------------------
# registered components
def build_head(**kwargs):
    cfg = dict(type='ConceptHead',
               in_channels=8,
               num_static=3,
               num_dynamic=4,
               recon_hid_channels=16)
    cfg.update(kwargs)
    head = MODELS.build(cfg)
    head.init_weights()
    return head


def pooled_features(num_inputs=2, batch_size=4, channels=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {
        kind:
        torch.randn(num_inputs,
                    batch_size,
                    channels,
                    generator=generator,
                    requires_grad=True)
        for kind in ('video', 'static', 'dynamic')
    }


def test_concept_head_losses_and_gradients():
    head = build_head(projection=dict(hid_channels=16, out_channels=6),
                      entropy_loss=dict(type='ConceptEntropyLoss'))
    features = pooled_features()
    codes = head.codes(features)
    assert {
        kind: tuple(c.shape)
        for kind, c in codes.items()
    } == {
        kind: (2, 4, 7)
        for kind in ('video', 'static', 'dynamic')
    }
    losses = head.loss(features, codes)
    assert set(losses) == {
        'loss_align_static', 'loss_align_dynamic', 'loss_sparsity',
        'loss_recon', 'loss_entropy'
    }
    # The sparsity is that of the bottleneck codes, summed over kinds.
    expected = (concept_sparsity(codes['video']) +
                concept_sparsity(codes['static'][..., :3]) +
                concept_sparsity(codes['dynamic'][..., 3:]))
    assert losses['loss_sparsity'].item() == pytest.approx(expected.item())
    sum(losses.values()).backward()
    for name, param in head.named_parameters():
        assert param.grad is not None, name
        assert torch.isfinite(param.grad).all(), name
    for kind, feats in features.items():
        assert torch.isfinite(feats.grad).all(), kind


def test_concept_head_prototypes_frozen_then_trained_and_normalised():
    head = build_head(freeze_prototypes_iters=1)
    features = pooled_features()
    sum(head.loss(features, head.codes(features)).values()).backward()
    assert all(p.weight.grad is None for p in head.prototypes.values())
    with torch.no_grad():
        head.prototypes['video'].weight.mul_(3)
    head.after_optim_step()
    norms = head.prototypes['video'].weight.norm(dim=1)
    assert torch.allclose(norms, torch.ones_like(norms))
    sum(head.loss(features, head.codes(features)).values()).backward()
    assert all(p.weight.grad is not None for p in head.prototypes.values())


def test_concept_head_queue_enters_sinkhorn_once_full():
    # 2 groups inputs (clip + static frame) x P=2 x N=4 = 16 codes a step.
    head = build_head(queue_len=16)
    first = pooled_features(seed=0)
    head.loss(first, head.codes(first))
    history = head.static_queue.clone()
    assert int(head.queue_seen) == 16
    second = pooled_features(seed=1)
    codes = head.codes(second)
    group = torch.cat([codes['video'][..., :3], codes['static'][..., :3]])
    expected = concept_alignment_loss(group, 0.1, 0.05, 3, history)
    without = concept_alignment_loss(group, 0.1, 0.05, 3)
    got = head.loss(second, codes)['loss_align_static']
    assert got.item() == pytest.approx(expected.item(), rel=1e-6)
    assert got.item() != pytest.approx(without.item(), rel=1e-6)
    small = build_head(queue_len=8)
    with pytest.raises(ValueError, match='queue_len=8'):
        small.loss(first, small.codes(first))


def test_concept_head_refuses_bad_config_and_inputs():
    with pytest.raises(ValueError, match='num_static'):
        build_head(num_static=0)
    with pytest.raises(ValueError, match='projection'):
        build_head(projection=dict(out_channels=4))
    head = build_head()
    features = pooled_features()
    with pytest.raises(ValueError, match='kinds'):
        head.codes({'video': features['video']})
    features['static'] = features['static'][:, :2]
    with pytest.raises(ValueError, match='one shape'):
        head.codes(features)
    with pytest.raises(ValueError, match='temperature'):
        MODELS.build(dict(type='ConceptAlignmentLoss', temperature=0))


def test_loss_weights_scale_the_losses():
    codes = torch.tensor([[0.5, -0.5]])
    weighted = MODELS.build(dict(type='ConceptSparsityLoss', loss_weight=3.0))
    assert weighted(codes).item() == pytest.approx(1.5)


def build_local(**kwargs):
    cfg = dict(type='LocalConceptContrast',
               in_channels=8,
               embed_dim=6,
               top_ratio=0.2,
               warmup_epochs=0)
    cfg.update(kwargs)
    return MODELS.build(cfg)


def concept_input(seed, prototypes):
    generator = torch.Generator().manual_seed(seed)
    feature_map = torch.randn(4,
                              8,
                              2,
                              3,
                              3,
                              generator=generator,
                              requires_grad=True)
    codes = torch.randn(4, 10, generator=generator)
    return ConceptInput(feature_map, prototypes, codes)


@pytest.mark.parametrize('attention_norm', ['locations', 'concepts'])
def test_local_contrast_forward_backward(attention_norm):
    local = build_local(attention_norm=attention_norm)
    prototypes = F.normalize(torch.randn(10, 6), dim=1).requires_grad_()
    first, second = concept_input(0, prototypes), concept_input(1, prototypes)
    out = local.loss('static', first, second)
    assert set(out) == {'loss_local_static', 'valid_static'}
    valid = valid_concepts(first.codes, second.codes, 2)
    assert out['valid_static'].item() == pytest.approx(
        valid.sum(1).float().mean().item())
    assert torch.isfinite(out['loss_local_static'])
    out['loss_local_static'].backward()
    for name, param in local.named_parameters():
        assert param.grad is not None and torch.isfinite(param.grad).all()
    assert torch.isfinite(prototypes.grad).all()
    assert torch.isfinite(first.feature_map.grad).all()
    assert local.local_features(first.feature_map,
                                prototypes).shape == (4, 10, 6)
    with pytest.raises(ValueError, match='feature maps'):
        local.local_features(first.feature_map[:, :4], prototypes)


def test_local_contrast_warmup_reads_the_runtime_info():
    prototypes = torch.randn(10, 6)
    first, second = concept_input(0, prototypes), concept_input(1, prototypes)
    hub = MessageHub.get_instance('test-concepts-warmup')
    by_epoch = build_local(warmup_epochs=5)
    by_iter = build_local(warmup_epochs=0, warmup_iters=100)
    hub.update_info('epoch', 4)
    hub.update_info('iter', 99)
    assert by_epoch.loss('s', first, second) == {}
    assert by_iter.loss('s', first, second) == {}
    hub.update_info('epoch', 5)
    hub.update_info('iter', 100)
    assert 'loss_local_s' in by_epoch.loss('s', first, second)
    assert 'loss_local_s' in by_iter.loss('s', first, second)
    with pytest.raises(ValueError, match='at most one'):
        build_local(warmup_epochs=1, warmup_iters=1)
    with pytest.raises(ValueError, match='top_ratio'):
        build_local(top_ratio=0.0)


# ----------------------------------------------------------------------
# two ranks equal one process
def _batch():
    generator = torch.Generator().manual_seed(0)
    scores = torch.randn(2, 8, 5, generator=generator)  # P, N, K
    local_a = torch.randn(8, 5, 3, generator=generator)
    local_b = torch.randn(8, 5, 3, generator=generator)
    valid = torch.rand(8, 5, generator=generator) > 0.5
    return scores, local_a, local_b, valid


def _losses(scores, local_a, local_b, valid):
    return (concept_alignment_loss(scores, 0.1, 0.05, 3),
            local_concept_contrast(local_a, local_b, valid, 1.4))


def _rank_worker(rank: int, world_size: int, port: int, out_dir: str):
    with gloo_rank(rank, world_size, port):
        dist.init_process_group('gloo')
        scores, local_a, local_b, valid = _batch()
        rows = slice(rank * 4, (rank + 1) * 4)
        scores = scores[:, rows].clone().requires_grad_()
        local_a = local_a[rows].clone().requires_grad_()
        align, contrast = _losses(scores, local_a, local_b[rows],
                                  valid[rows])
        (align + contrast).backward()
    torch.save(
        dict(align=align.detach(),
             contrast=contrast.detach(),
             scores_grad=scores.grad,
             local_grad=local_a.grad), os.path.join(out_dir, f'{rank}.pt'))


def test_two_ranks_equal_one_process():
    """Sinkhorn sums, the negatives of the local contrast and its count of
    valid pairs run over both ranks: the mean of the ranks' losses and the
    rank-averaged gradients equal one process on the whole batch."""
    with tempfile.TemporaryDirectory() as out_dir:
        mp.spawn(_rank_worker, args=(2, free_port(), out_dir), nprocs=2)
        results = [
            torch.load(os.path.join(out_dir, f'{r}.pt')) for r in range(2)
        ]
    scores, local_a, local_b, valid = _batch()
    scores.requires_grad_()
    local_a.requires_grad_()
    align, contrast = _losses(scores, local_a, local_b, valid)
    (align + contrast).backward()
    for name, reference in (('align', align), ('contrast', contrast)):
        mean = sum(r[name] for r in results) / 2
        assert mean.item() == pytest.approx(reference.item(), rel=1e-5)
    scores_grad = torch.cat([r['scores_grad'] for r in results], 1) / 2
    local_grad = torch.cat([r['local_grad'] for r in results]) / 2
    assert torch.allclose(scores_grad, scores.grad, atol=1e-6)
    assert torch.allclose(local_grad, local_a.grad, atol=1e-6)
