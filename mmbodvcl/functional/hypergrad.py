"""Hypergradients of the BOD-VCL bi-level problem, in pure PyTorch.

Both levels share the parameters ``theta``. The lower level moves ``theta``
by ``k`` gradient steps of size ``gamma`` on ``L_pred``; the upper level
differentiates ``U = L_A + L_M`` evaluated at the result ``theta*``:

* ``itd_rmad``: reverse mode through the ``k`` unrolled steps (exact for the
  unrolled map, ``prod_j (I - gamma H(theta_j))`` applied to ``v``).
* ``aid_fd`` (DARTS, default): ``v - gamma H v`` with the Hessian-vector
  product ``H v`` by a central difference of ``grad L_pred`` at
  ``theta* +/- eps v``, ``eps = alpha / ||v||``.
* ``aid_nmn``: ``(I + gamma H)^-1 v`` by the truncated Neumann series
  ``sum_{j<=n} (-gamma H)^j v``.
* ``aid_cg``: ``(I + gamma H)^-1 v`` by conjugate gradient.
* ``first_order``: ``v``.

Here ``v = grad U(theta*)`` and, for the AID methods, ``H`` is the Hessian
of ``L_pred`` at ``theta*``: ``(I + gamma H(theta*))^-1`` is the Jacobian of
the proximal lower problem ``argmin_phi L_pred(phi) + |phi - theta|^2 /
(2 gamma)`` (implicit function theorem). See docs/bilevel.md.

The losses are callables of the parameter tensors (evaluated statelessly,
e.g. with ``torch.func.functional_call``), so the caller's parameters are
never modified: nothing can be left perturbed.
"""
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Callable, ContextManager, Dict, List, Optional, Sequence

import torch
from torch import Tensor

LossFn = Callable[[Sequence[Tensor]], Tensor]
Reduce = Callable[[List[Tensor]], List[Tensor]]
LowerStep = Callable[[List[Tensor], List[Tensor]], List[Tensor]]

HYPERGRAD_METHODS = ('itd_rmad', 'aid_fd', 'aid_nmn', 'aid_cg', 'first_order')


@dataclass
class HypergradResult:
    """What :func:`bilevel_hypergradient` returns.

    Attributes:
        hypergrad: ``d U(theta*(theta)) / d theta``, one tensor per parameter
            (same shapes), averaged by ``reduce_mean``.
        upper_grad: ``v = grad U(theta*)``, one tensor per parameter.
        lower_loss: detached ``L_pred`` at the first lower step (at theta).
        lower_grad_norm: ``|grad L_pred(theta)|`` (rank-averaged), to judge
            the lower step ``gamma |grad L_pred|`` against ``|theta|``.
        upper_loss: detached ``U(theta*)``.
        seconds: wall time of the phases ``lower``, ``upper``, ``hypergrad``.
        passes: how many forward / backward / double-backward passes of each
            loss the method ran (``lower_forward``, ``lower_backward``,
            ``lower_hvp``, ``upper_forward``, ``upper_backward``).
    """
    hypergrad: List[Tensor]
    upper_grad: List[Tensor]
    lower_loss: Tensor
    lower_grad_norm: Tensor
    upper_loss: Tensor
    seconds: Dict[str, float] = field(default_factory=dict)
    passes: Dict[str, int] = field(default_factory=dict)


def _identity(tensors: List[Tensor]) -> List[Tensor]:
    return tensors


def _grad(loss: Tensor,
          inputs: Sequence[Tensor],
          create_graph: bool = False,
          loss_scale: float = 1.0) -> List[Tensor]:
    """``autograd.grad`` of ``loss`` (backpropagated as ``loss * loss_scale``
    and unscaled, for fp16 loss scaling) with zeros for unused inputs."""
    grads = torch.autograd.grad(
        loss * loss_scale if loss_scale != 1.0 else loss,
        inputs,
        create_graph=create_graph,
        allow_unused=True)
    return [
        torch.zeros_like(x) if g is None else
        (g / loss_scale if loss_scale != 1.0 else g)
        for g, x in zip(grads, inputs)
    ]


def _leaves(tensors: Sequence[Tensor]) -> List[Tensor]:
    return [t.detach().requires_grad_(True) for t in tensors]


def _dot(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> Tensor:
    return sum((x.double() * y.double()).sum() for x, y in zip(xs, ys))


def _timed(seconds: Dict[str, float], phase: str, sync: Callable[[], None],
           start: float) -> float:
    sync()
    now = time.perf_counter()
    seconds[phase] = seconds.get(phase, 0.0) + now - start
    return now


def bilevel_hypergradient(params: Sequence[Tensor],
                          lower_loss: LossFn,
                          upper_loss: LossFn,
                          method: str = 'aid_fd',
                          lower_lr: float = 1e-2,
                          inner_steps: int = 1,
                          alpha: float = 0.01,
                          iterations: int = 5,
                          cg_tol: float = 1e-10,
                          loss_scale: float = 1.0,
                          reduce_mean: Reduce = _identity,
                          lower_step: Optional[LowerStep] = None,
                          side_effect_free: Callable[[], ContextManager] = (
                              nullcontext),
                          sync: Callable[[], None] = lambda: None
                          ) -> HypergradResult:
    """Hypergradient of ``U(theta*(theta))`` for one bi-level iteration.

    Args:
        params: the shared parameters ``theta`` (leaf tensors, any shapes);
            they are read, never modified.
        lower_loss: ``L_pred`` as a function of tensors standing in for
            ``params`` (same order and shapes) -> scalar tensor.
        upper_loss: ``U = L_A + L_M`` likewise. Called exactly once.
        method: one of :data:`HYPERGRAD_METHODS`.
        lower_lr: ``gamma``, the lower step size (also the ``gamma`` of the
            hypergradient formula when ``lower_step`` is given).
        inner_steps: ``k`` lower steps.
        alpha: AID-FD perturbation size, ``eps = alpha / ||v||``.
        iterations: Neumann terms / CG iterations.
        cg_tol: CG stops when the squared residual norm falls below it.
        loss_scale: every loss is backpropagated multiplied by it and the
            gradients divided by it (fp16 loss scaling); 1 otherwise.
        reduce_mean: averages a list of tensors across data-parallel ranks
            (identity on one process). Applied to every gradient and
            Hessian-vector product, so every rank takes identical steps and
            identical finite-difference perturbations.
        lower_step: ``(theta_j, grad_j) -> theta_{j+1}`` replacing plain
            gradient descent (a separate lower optimiser); not differentiable,
            so not allowed with ``itd_rmad``.
        side_effect_free: context manager entered around every lower-loss
            evaluation, e.g. to restore BatchNorm statistics and RNG state.
        sync: device synchronisation before reading the clock.

    Returns:
        :class:`HypergradResult`.
    """
    if method not in HYPERGRAD_METHODS:
        raise ValueError(f'hypergradient method {method!r} is unknown; '
                         f'expected one of {HYPERGRAD_METHODS}')
    if inner_steps < 1:
        raise ValueError(f'inner_steps must be >= 1, got {inner_steps}')
    if iterations < 1:
        raise ValueError(f'iterations must be >= 1, got {iterations}')
    if method == 'itd_rmad' and lower_step is not None:
        raise ValueError('itd_rmad differentiates through the lower steps, '
                         'which needs plain gradient descent: remove the '
                         'separate lower optimiser or pick an AID method')
    params = list(params)
    seconds: Dict[str, float] = {}
    passes = dict(
        lower_forward=0,
        lower_backward=0,
        lower_hvp=0,
        upper_forward=0,
        upper_backward=0)
    unrolled = method == 'itd_rmad'

    # Lower level: theta* by k gradient steps on L_pred.
    start = time.perf_counter()
    theta = list(params) if unrolled else _leaves(params)
    first_lower_loss = None
    for _ in range(inner_steps):
        with side_effect_free():
            loss = lower_loss(theta)
        passes['lower_forward'] += 1
        grads = reduce_mean(
            _grad(loss, theta, create_graph=unrolled, loss_scale=loss_scale))
        passes['lower_backward'] += 1
        if first_lower_loss is None:
            first_lower_loss = loss.detach()
            first_lower_grad_norm = torch.sqrt(_dot(grads, grads)).detach()
        if lower_step is not None:
            theta = _leaves(lower_step(theta, grads))
        elif unrolled:
            theta = [t - lower_lr * g for t, g in zip(theta, grads)]
        else:
            theta = _leaves(
                [t.detach() - lower_lr * g for t, g in zip(theta, grads)])
    start = _timed(seconds, 'lower', sync, start)

    # Upper level at theta*.
    up_loss = upper_loss(theta)
    passes['upper_forward'] += 1
    if unrolled:
        # v and the unrolled hypergradient in one reverse pass: v is the
        # gradient at theta*, the hypergradient the one at theta.
        outs = _grad(up_loss, theta + params, loss_scale=loss_scale)
        upper_grad = reduce_mean(outs[:len(params)])
        hypergrad = reduce_mean(outs[len(params):])
    else:
        upper_grad = reduce_mean(_grad(up_loss, theta, loss_scale=loss_scale))
    passes['upper_backward'] += 1
    start = _timed(seconds, 'upper', sync, start)

    if method == 'first_order' or unrolled:
        if method == 'first_order':
            hypergrad = upper_grad
    elif method == 'aid_fd':
        hypergrad = _finite_difference(theta, upper_grad, lower_loss,
                                       lower_lr, alpha, loss_scale,
                                       reduce_mean, side_effect_free, passes)
    else:
        with side_effect_free():
            loss = lower_loss(theta)
        passes['lower_forward'] += 1
        lower_grad = _grad(
            loss, theta, create_graph=True, loss_scale=loss_scale)
        passes['lower_backward'] += 1

        def hvp(vec: List[Tensor]) -> List[Tensor]:
            passes['lower_hvp'] += 1
            return reduce_mean(
                [h.detach() for h in _grad_outputs(lower_grad, theta, vec)])

        if method == 'aid_nmn':
            hypergrad = _neumann(hvp, upper_grad, lower_lr, iterations)
        else:
            hypergrad = _conjugate_gradient(hvp, upper_grad, lower_lr,
                                            iterations, cg_tol)
        del lower_grad
    _timed(seconds, 'hypergrad', sync, start)
    hypergrad = [h.detach() for h in hypergrad]
    return HypergradResult(
        hypergrad=hypergrad,
        upper_grad=[v.detach() for v in upper_grad],
        lower_loss=first_lower_loss,
        lower_grad_norm=first_lower_grad_norm,
        upper_loss=up_loss.detach(),
        seconds=seconds,
        passes=passes)


def _grad_outputs(outputs: List[Tensor], inputs: List[Tensor],
                  vec: List[Tensor]) -> List[Tensor]:
    """Vector-Jacobian product ``vec^T d outputs / d inputs``."""
    connected = [i for i, o in enumerate(outputs) if o.requires_grad]
    result = [torch.zeros_like(x) for x in inputs]
    if not connected:
        return result
    grads = torch.autograd.grad([outputs[i] for i in connected],
                                inputs,
                                grad_outputs=[vec[i] for i in connected],
                                retain_graph=True,
                                allow_unused=True)
    return [r if g is None else g for g, r in zip(grads, result)]


def _finite_difference(theta: List[Tensor], upper_grad: List[Tensor],
                       lower_loss: LossFn, lower_lr: float, alpha: float,
                       loss_scale: float, reduce_mean: Reduce,
                       side_effect_free: Callable[[], ContextManager],
                       passes: Dict[str, int]) -> List[Tensor]:
    """DARTS: ``v - gamma (g(theta*+eps v) - g(theta*-eps v)) / (2 eps)``."""
    norm = torch.sqrt(_dot(upper_grad, upper_grad)).item()
    if norm == 0.0:
        return list(upper_grad)
    eps = alpha / norm
    diffs = []
    for sign in (1.0, -1.0):
        shifted = _leaves(
            [t.detach() + sign * eps * v for t, v in zip(theta, upper_grad)])
        with side_effect_free():
            loss = lower_loss(shifted)
        passes['lower_forward'] += 1
        diffs.append(
            reduce_mean(_grad(loss, shifted, loss_scale=loss_scale)))
        passes['lower_backward'] += 1
    scale = lower_lr / (2.0 * eps)
    return [
        v - scale * (gp - gm)
        for v, gp, gm in zip(upper_grad, diffs[0], diffs[1])
    ]


def _neumann(hvp: Callable[[List[Tensor]], List[Tensor]],
             upper_grad: List[Tensor], lower_lr: float,
             terms: int) -> List[Tensor]:
    """``sum_{j=0..terms} (-gamma H)^j v`` (converges if gamma |H| < 1)."""
    term = list(upper_grad)
    total = list(upper_grad)
    for _ in range(terms):
        term = [-lower_lr * h for h in hvp(term)]
        total = [s + t for s, t in zip(total, term)]
    return total


def _conjugate_gradient(hvp: Callable[[List[Tensor]], List[Tensor]],
                        upper_grad: List[Tensor], lower_lr: float,
                        iterations: int, tol: float) -> List[Tensor]:
    """Solve ``(I + gamma H) x = v`` by CG from ``x = 0`` (as betty-ml).

    Needs ``I + gamma H`` positive definite (``gamma |H| < 1`` suffices for
    an indefinite ``H``). The scalar recurrences run in float64.
    """

    def operator(vec: List[Tensor]) -> List[Tensor]:
        return [x + lower_lr * h for x, h in zip(vec, hvp(vec))]

    x = [torch.zeros_like(v) for v in upper_grad]
    residual = list(upper_grad)
    direction = list(residual)
    rr = _dot(residual, residual)
    for _ in range(iterations):
        if rr.item() <= tol:
            break
        a_dir = operator(direction)
        curvature = _dot(direction, a_dir)
        if curvature.item() <= 0:
            raise FloatingPointError(
                'AID-CG met a direction of non-positive curvature of '
                f'(I + gamma H) ({curvature.item():.3e}): the lower Hessian '
                'has eigenvalues below -1/gamma; lower the lower-level '
                'learning rate or use aid_fd / aid_nmn')
        step = (rr / curvature).item()
        x = [xi + step * d for xi, d in zip(x, direction)]
        residual = [r - step * ad for r, ad in zip(residual, a_dir)]
        rr_new = _dot(residual, residual)
        direction = [
            r + (rr_new / rr).item() * d
            for r, d in zip(residual, direction)
        ]
        rr = rr_new
    return x
