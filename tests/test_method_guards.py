"""Guards of the method itself: tests that fail when BOD-VCL is silently
broken while every shape and finiteness check still passes.

* The split, end to end: per-frame features whose static and dynamic parts
  are known by construction go through the real ``KoopmanDecoupler`` inside
  a real ``VSimCLR`` (real neck, real heads and losses); the test checks
  which part comes out as ``static`` / ``dynamic`` and which head scores
  which part. A swapped split, or a head given the other part, fails.
* The bi-level step, end to end: the parameter update that
  ``BiLevelOptimWrapper`` applies with the default hypergradient equals an
  independent computation by autograd through one unrolled lower step,
  with ``lower_lr`` and gradient clipping in play. A dropped second-order
  term, an ignored ``lower_lr`` or a wrong scale fails.
"""
import math
from typing import Dict, List, Optional, Tuple

import pytest
import torch
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from torch import Tensor, nn
from torch.func import functional_call

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from mmbodvcl.engine import DEFAULT_HYPERGRADIENT
from mmbodvcl.functional.hypergrad import ItdFd

# ------------------------------------------------------------------ split
VIDEOS, FRAMES, CHANNELS, EMBED = 6, 8, 12, 16
RADIUS, ANGLE = 0.7, 0.9  # dynamic eigenvalues 0.7 exp(+-0.9i)


@MODELS.register_module(force=True)
class GivenPerFrameFeatures(nn.Module):
    """A backbone that hands its input on: the test writes the per-frame
    features it wants as ``(N, C, T, 1, 1)`` clips."""

    def forward(self, clips: Tensor) -> Tensor:
        return clips


def known_views(generator: torch.Generator) -> Tuple[List[Tensor], Tensor,
                                                     Tensor]:
    """Two views of ``VIDEOS`` clips ``z_t = s + Re(c lambda^t)``: a static
    vector ``s`` per video (eigenvalue 1, the same in both views) plus a
    damped rotation (``|lambda - 1| = 0.78`` > xi) whose amplitude and phase
    are drawn per view. Returns the views ``(N, C, T, 1, 1)`` and the two
    parts' per-frame features ``(V, N, C, T)``."""
    static = torch.randn(VIDEOS, CHANNELS, 1, generator=generator)
    times = torch.arange(FRAMES, dtype=torch.float32)
    statics, dynamics = [], []
    for _ in range(2):
        cosine = torch.randn(VIDEOS, CHANNELS, 1, generator=generator)
        sine = torch.randn(VIDEOS, CHANNELS, 1, generator=generator)
        dynamic = RADIUS**times * (cosine * torch.cos(ANGLE * times) +
                                   sine * torch.sin(ANGLE * times))
        statics.append(static.expand(-1, -1, FRAMES))
        dynamics.append(dynamic)
    statics, dynamics = torch.stack(statics), torch.stack(dynamics)
    views = [(s + d)[..., None, None] for s, d in zip(statics, dynamics)]
    return views, statics, dynamics


def split_model() -> nn.Module:
    init_default_scope('mmaction')
    model = MODELS.build(
        dict(
            type='VSimCLR',
            backbone=dict(type='GivenPerFrameFeatures'),
            # One linear layer and BatchNorm: affine in eval mode, so the
            # embedded parts are known too (the neck of the constant part
            # carries the bias).
            neck=dict(
                type='PerFrameProjectionNeck',
                in_channels=CHANNELS,
                out_channels=EMBED,
                num_layers=1),
            decoupler=dict(type='KoopmanDecoupler', xi=0.1),
            head=dict(
                type='MultiViewContrastiveHead',
                loss=dict(type='MultiViewInfoNCELoss', temperature=0.1))))
    model.init_weights()
    return model.eval()


def embedded_parts(model, statics: Tensor,
                   dynamics: Tensor) -> Dict[str, Tensor]:
    """``Z_A`` and ``Z_M`` expected of an affine encoder: the temporal mean
    of the embedded constant part, and the rest of the embedded mean."""
    with torch.no_grad():
        whole = torch.stack([
            model.encode((s + d)[..., None, None]).mean(-1)
            for s, d in zip(statics, dynamics)
        ])
        static = torch.stack(
            [model.encode(s[..., None, None]).mean(-1) for s in statics])
    return dict(static=static, dynamic=whole - static)


def test_known_parts_reach_their_heads():
    generator = torch.Generator().manual_seed(0)
    views, statics, dynamics = known_views(generator)
    model = split_model()
    expected = embedded_parts(model, statics, dynamics)
    # The constructed parts differ: a swap cannot pass by coincidence.
    assert (expected['static'] - expected['dynamic']).norm() > \
        0.5 * expected['static'].norm()

    with torch.no_grad():
        decoupled = model.decouple_views(views)
        losses = model.loss(views)
    # Every clip has exactly one static mode: the eigenvalue 1 of s.
    assert decoupled.statistics['num_static_modes'] == 1
    # The decoupler puts the constant part into `static`, the rotation into
    # `dynamic` (fp32 eig of a well-conditioned rank-3 system: 1e-4).
    for part in ('static', 'dynamic'):
        torch.testing.assert_close(
            decoupled.parts[part], expected[part], rtol=1e-4, atol=1e-4)
    # Each head scores its own part: the loss of `static` is the static
    # head's loss of the known static part, and not of the dynamic one.
    for part, other in (('static', 'dynamic'), ('dynamic', 'static')):
        own = model.heads[part].loss(expected[part])
        wrong = model.heads[part].loss(expected[other])
        torch.testing.assert_close(losses[f'loss_{part}'], own,
                                   rtol=1e-4, atol=1e-4)
        assert (own - wrong).abs() > 1e-2, (part, own, wrong)


def test_static_part_is_what_the_views_share():
    """The property the method rests on, on the same clips: the two views
    of a video share their static part exactly and not their dynamic one,
    so the static InfoNCE (positives identical) is the lower of the two."""
    views, statics, dynamics = known_views(torch.Generator().manual_seed(1))
    model = split_model()
    with torch.no_grad():
        parts = model.decouple_views(views).parts
        losses = model.loss(views)
    torch.testing.assert_close(parts['static'][0], parts['static'][1],
                               rtol=1e-4, atol=1e-4)
    gap = (parts['dynamic'][0] - parts['dynamic'][1]).norm(dim=-1)
    assert (gap > 1e-2 * parts['dynamic'][0].norm(dim=-1)).all()
    assert losses['loss_static'] < losses['loss_dynamic']


# ---------------------------------------------------------- bi-level step
class SmoothNet(nn.Module):
    """Two tanh layers in float64: smooth, so the one-sided difference of
    ITD-FD has its O(alpha) error only."""

    def __init__(self) -> None:
        super().__init__()
        self.hidden = nn.Linear(3, 5)
        self.out = nn.Linear(5, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(torch.tanh(self.hidden(x)))


def lower_objective(net: nn.Module, params: Dict[str, Tensor],
                    x: Tensor) -> Tensor:
    """A stand-in for L_pred: the first output predicts a function of x."""
    y = functional_call(net, params, (x, ))
    return (y[:, 0] - torch.sin(x[:, 0])).square().mean()


def upper_objective(net: nn.Module, params: Dict[str, Tensor],
                    x: Tensor) -> Tensor:
    """A stand-in for L_A + L_M, coupled to the lower one through every
    parameter."""
    y = functional_call(net, params, (x, ))
    return (y - x[:, 1:]).square().mean() + 0.5 * y[:, 0].pow(3).mean()


def reference_update(net: nn.Module, x: Tensor, gamma: float, lr: float,
                     max_norm: float) -> Tuple[Dict[str, Tensor], float]:
    """theta' = theta - gamma grad L_lower(theta); h = d L_upper(theta') /
    d theta by autograd through the step; the step SGD takes on h clipped
    to ``max_norm`` (``clip_grad_norm_``'s rule). Also returns the size of
    the second-order part of h relative to h."""
    names = [n for n, _ in net.named_parameters()]
    theta = [p.detach().clone().requires_grad_() for p in net.parameters()]
    lower = lower_objective(net, dict(zip(names, theta)), x)
    grads = torch.autograd.grad(lower, theta, create_graph=True)
    moved = [t - gamma * g for t, g in zip(theta, grads)]
    upper = upper_objective(net, dict(zip(names, moved)), x)
    hyper = torch.autograd.grad(upper, theta)
    flat = torch.cat([h.reshape(-1) for h in hyper])
    scale = min(1.0, max_norm / (flat.norm().item() + 1e-6))
    return {n: -lr * scale * h for n, h in zip(names, hyper)}, scale


def first_order_part(net: nn.Module, x: Tensor, gamma: float) -> Tensor:
    """v = grad L_upper at theta' (what a method without the correction
    would step along), flattened."""
    names = [n for n, _ in net.named_parameters()]
    theta = [p.detach() for p in net.parameters()]
    params = [t.clone().requires_grad_() for t in theta]
    grads = torch.autograd.grad(
        lower_objective(net, dict(zip(names, params)), x), params)
    moved = [(t - gamma * g).requires_grad_() for t, g in zip(theta, grads)]
    v = torch.autograd.grad(
        upper_objective(net, dict(zip(names, moved)), x), moved)
    return torch.cat([g.reshape(-1) for g in v])


@pytest.mark.parametrize(
    'lower_lr, lr, max_norm',
    [
        (0.5, 0.1, 0.05),  # lower_lr given; clipping scales the step
        (None, 0.4, 1e3),  # gamma = the optimiser's lr; no clipping
    ])
def test_default_bilevel_update_equals_unrolled_autograd(
        lower_lr: Optional[float], lr: float, max_norm: float):
    torch.manual_seed(0)
    net = SmoothNet().double()
    x = torch.randn(16, 3, dtype=torch.float64)
    gamma = lr if lower_lr is None else lower_lr
    before = {n: p.detach().clone() for n, p in net.named_parameters()}
    reference, scale = reference_update(net, x, gamma, lr, max_norm)
    # The case is the one it claims to be: clipping acts, or does not.
    assert (scale < 0.5) if max_norm < 1 else (scale == 1.0)

    wrapper = build_optim_wrapper(
        net,
        dict(
            type='BiLevelOptimWrapper',
            optimizer=dict(type='SGD', lr=lr),
            clip_grad=dict(max_norm=max_norm),
            hypergrad=dict(lower_lr=lower_lr)))
    assert DEFAULT_HYPERGRADIENT == 'itd_fd'
    assert isinstance(wrapper.hypergrad, ItdFd)
    names = [n for n, _ in net.named_parameters()]

    def as_loss(objective):
        return lambda tensors: (objective(net, dict(zip(names, tensors)), x),
                                {})

    wrapper.update_params_bilevel(
        list(net.named_parameters()), as_loss(lower_objective),
        as_loss(upper_objective))
    applied = torch.cat([(p.detach() - before[n]).reshape(-1)
                         for n, p in net.named_parameters()])
    expected = torch.cat([reference[n].reshape(-1) for n in names])

    # The second-order part (theta' depends on theta) is a sizeable share
    # of the step, so the comparison below sees it.
    v = first_order_part(net, x, gamma)
    without_correction = -lr * scale * v
    correction = (expected - without_correction).norm()
    assert correction > 0.05 * expected.norm()
    # ITD-FD's one-sided difference errs by O(alpha) = 1e-4 of the
    # correction (float64: rounding ~1e-12); 1e-3 leaves a 10x margin and
    # is 50x below a dropped correction or a wrong gamma.
    assert (applied - expected).norm() < 1e-3 * correction, (
        (applied - expected).norm(), correction)
    assert math.isfinite(applied.norm().item())
