"""Hypergradients of the BOD-VCL bi-level problem: the shared machinery.

Both levels share the parameters ``theta``. The lower level moves ``theta``
by ``k`` gradient steps of size ``gamma`` on ``L_pred`` (``theta_0 = theta``,
``theta_{j+1} = theta_j - gamma grad L_pred(theta_j)``, ``theta* =
theta_k``); the upper level differentiates ``U = L_A + L_M`` at ``theta*``.
With ``v = grad U(theta*)`` and ``H = grad^2 L_pred``:

* the unrolled map has the hypergradient ``prod_j (I - gamma H(theta_j)) v``
  (reverse order), exact for the ``k`` steps;
* the proximal lower problem ``argmin_phi L_pred(phi) + |phi - theta|^2 /
  (2 gamma)`` has, by the implicit function theorem, ``(I + gamma
  H(theta*))^-1 v``, which the AID methods approximate.

A method is a small :class:`Hypergradient` subclass (one per file next to
this one): the lower steps and the upper gradient are shared here, the
subclass supplies :meth:`Hypergradient.correct` (``v`` -> hypergradient)
and its constructor arguments are its whole configuration. The families
of methods share a base here too: :class:`FiniteDifference` (AID-FD,
ITD-FD), :class:`HessianSolve` (AID-NMN) and its :class:`KrylovSolve`
(AID-CG, AID-MINRES).

The losses are callables of tensors standing in for the parameters
(evaluated statelessly, e.g. with ``torch.func.functional_call``), so the
caller's parameters are never modified: nothing can be left perturbed. See
docs/bilevel.md.
"""
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import (Callable, ContextManager, Dict, List, Optional, Sequence,
                    Tuple)

import torch
from torch import Tensor

LossFn = Callable[[Sequence[Tensor]], Tensor]
Reduce = Callable[[List[Tensor]], List[Tensor]]
LowerStep = Callable[[List[Tensor], List[Tensor]], List[Tensor]]
Operator = Callable[[List[Tensor]], List[Tensor]]


def _identity(tensors: List[Tensor]) -> List[Tensor]:
    return tensors


def _no_sync() -> None:
    return None


def _count(owner: object, name: str, value: int) -> int:
    """``value``, checked to be an integer >= 1 (an argument ``name`` of
    ``owner``)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f'{type(owner).__name__}: {name} must be an integer '
                         f'>= 1, got {value!r}')
    return value


def _zero_passes() -> Dict[str, int]:
    return dict(
        lower_forward=0,
        lower_backward=0,
        lower_hvp=0,
        upper_forward=0,
        upper_backward=0)


def leaves(tensors: Sequence[Tensor]) -> List[Tensor]:
    """Detached copies-by-reference that require grad (new graph leaves)."""
    return [t.detach().requires_grad_(True) for t in tensors]


def shifted(theta: Sequence[Tensor], direction: Sequence[Tensor],
            eps: float) -> List[Tensor]:
    """New leaves at ``theta + eps * direction``."""
    with torch.no_grad():
        moved = torch._foreach_add(list(theta), list(direction), alpha=eps)
    return leaves(moved)


def dot(xs: Sequence[Tensor], ys: Sequence[Tensor]) -> Tensor:
    """``<xs, ys>`` over all tensors, accumulated in float64."""
    return sum((x.double() * y.double()).sum() for x, y in zip(xs, ys))


def norm(tensors: Sequence[Tensor]) -> Tensor:
    """2-norm over all tensors as a detached float64 scalar; any NaN or Inf
    (or a single tensor's norm beyond the float range) makes it
    non-finite. Per-tensor norms in the tensors' dtype: float64 ones cost
    7x more on CPU and would copy every tensor."""
    with torch.no_grad():
        norms = torch._foreach_norm([t.detach() for t in tensors])
        return torch.linalg.vector_norm(torch.stack(norms).double())


def gradient(loss: Tensor,
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


def vector_jacobian(outputs: List[Tensor], inputs: List[Tensor],
                    vec: List[Tensor]) -> List[Tensor]:
    """``vec^T d outputs / d inputs`` (zeros where nothing connects)."""
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


@dataclass
class BilevelProblem:
    """One iteration's two losses and how to differentiate them.

    Args:
        lower_loss: ``L_pred`` as a function of tensors standing in for the
            parameters (same order and shapes) -> scalar tensor.
        upper_loss: ``U = L_A + L_M`` likewise. Called exactly once.
        lower_lr: ``gamma``, the lower step size (also the ``gamma`` of the
            hypergradient formulas when ``lower_step`` is given).
        loss_scale: every loss is backpropagated multiplied by it and the
            gradients divided by it (fp16 loss scaling); 1 otherwise.
        reduce_mean: averages a list of tensors across data-parallel ranks
            (identity on one process). Applied to every gradient and
            Hessian-vector product, so every rank takes identical steps and
            identical finite-difference perturbations.
        lower_step: ``(theta_j, grad_j) -> theta_{j+1}`` replacing plain
            gradient descent (a separate lower optimiser); not
            differentiable, so refused by the unrolled methods.
        side_effect_free: context manager entered around every lower-loss
            evaluation, e.g. to replay the same random numbers.
        sync: device synchronisation before reading the clock.
    """
    lower_loss: LossFn
    upper_loss: LossFn
    lower_lr: float
    loss_scale: float = 1.0
    reduce_mean: Reduce = _identity
    lower_step: Optional[LowerStep] = None
    side_effect_free: Callable[[], ContextManager] = nullcontext
    sync: Callable[[], None] = _no_sync
    passes: Dict[str, int] = field(default_factory=_zero_passes)

    def _lower(self, theta: List[Tensor]) -> Tensor:
        with self.side_effect_free():
            loss = self.lower_loss(theta)
        self.passes['lower_forward'] += 1
        return loss

    def lower_gradient(self,
                       theta: List[Tensor],
                       create_graph: bool = False) -> Tuple[Tensor,
                                                            List[Tensor]]:
        """``L_pred(theta)`` and its rank-averaged gradient."""
        loss = self._lower(theta)
        grads = gradient(loss, theta, create_graph, self.loss_scale)
        self.passes['lower_backward'] += 1
        return loss, self.reduce_mean(grads)

    def upper_gradient(
        self,
        theta: List[Tensor],
        also: Sequence[Tensor] = ()
    ) -> Tuple[Tensor, List[Tensor]]:
        """``U(theta)`` and its rank-averaged gradient with respect to
        ``theta`` followed by ``also`` (one reverse pass, one reduce)."""
        loss = self.upper_loss(theta)
        self.passes['upper_forward'] += 1
        grads = gradient(loss, list(theta) + list(also), False,
                         self.loss_scale)
        self.passes['upper_backward'] += 1
        return loss, self.reduce_mean(grads)

    def lower_hessian_product(self, theta: List[Tensor]) -> Operator:
        """``vec -> H(theta) vec`` by double backward through one lower
        forward and backward (kept alive while the operator is)."""
        loss = self._lower(theta)
        grads = gradient(loss, theta, True, self.loss_scale)
        self.passes['lower_backward'] += 1

        def hvp(vec: List[Tensor]) -> List[Tensor]:
            self.passes['lower_hvp'] += 1
            return self.reduce_mean(
                [h.detach() for h in vector_jacobian(grads, theta, vec)])

        return hvp


@dataclass
class HypergradResult:
    """What a :class:`Hypergradient` returns.

    Attributes:
        hypergrad: ``d U(theta*(theta)) / d theta``, one tensor per parameter
            (same shapes), rank-averaged.
        upper_grad: ``v = grad U(theta*)``, one tensor per parameter.
        lower_loss: detached ``L_pred`` at the first lower step (at theta).
        lower_grad_norm: ``|grad L_pred(theta)|`` (rank-averaged), to judge
            the lower step ``gamma |grad L_pred|`` against ``|theta|``.
        upper_loss: detached ``U(theta*)``.
        seconds: wall time of the phases ``lower``, ``upper``, ``hypergrad``.
        passes: forward / backward / double-backward passes of each loss
            (``lower_forward``, ``lower_backward``, ``lower_hvp``,
            ``upper_forward``, ``upper_backward``).
        stats: diagnostics of the method (e.g. CG iterations), floats.
    """
    hypergrad: List[Tensor]
    upper_grad: List[Tensor]
    lower_loss: Tensor
    lower_grad_norm: Tensor
    upper_loss: Tensor
    seconds: Dict[str, float] = field(default_factory=dict)
    passes: Dict[str, int] = field(default_factory=dict)
    stats: Dict[str, float] = field(default_factory=dict)


@dataclass
class LowerPath:
    """The lower steps of one iteration.

    ``points`` / ``grads`` hold ``theta_j`` and ``grad L_pred(theta_j)`` of
    every step when the method asks for them (``keeps_path``).
    """
    theta_star: List[Tensor]
    loss: Tensor
    grad_norm: Tensor
    points: List[List[Tensor]] = field(default_factory=list)
    grads: List[List[Tensor]] = field(default_factory=list)


class _Clock:

    def __init__(self, sync: Callable[[], None]) -> None:
        self.sync = sync
        self.start = time.perf_counter()

    def lap(self) -> float:
        self.sync()
        now = time.perf_counter()
        seconds, self.start = now - self.start, now
        return seconds


class Hypergradient:
    """Base of the hypergradient methods: ``k`` lower steps, ``v``, then
    :meth:`correct`.

    Args:
        inner_steps: ``k`` lower steps.
        lower_lr: ``gamma``; None leaves it to the caller (the optimiser
            wrapper then uses the scheduled learning rate). Read by the
            caller, which puts it into :class:`BilevelProblem`.
    """
    #: Unrolls ``k`` plain gradient-descent steps: no ``lower_step``.
    unrolled = False
    #: Build the lower steps' graphs (reverse mode through them).
    differentiates_lower = False
    #: Keep ``theta_j`` and ``grad L_pred(theta_j)`` of every lower step.
    keeps_path = False

    def __init__(self,
                 inner_steps: int = 1,
                 lower_lr: Optional[float] = None) -> None:
        self.inner_steps = _count(self, 'inner_steps', inner_steps)
        if lower_lr is not None and not lower_lr > 0:
            raise ValueError(f'{type(self).__name__}: lower_lr must be > 0 '
                             f'or None, got {lower_lr!r}')
        self.lower_lr = lower_lr

    def __repr__(self) -> str:
        args = ', '.join(f'{k}={v!r}' for k, v in vars(self).items())
        return f'{type(self).__name__}({args})'

    def __call__(self, params: Sequence[Tensor],
                 problem: BilevelProblem) -> HypergradResult:
        """Hypergradient of ``U(theta*(theta))`` at ``theta = params`` (leaf
        tensors, read and never modified)."""
        if self.unrolled and problem.lower_step is not None:
            raise ValueError(
                f'{type(self).__name__} differentiates through the lower '
                'steps, which needs plain gradient descent: remove the '
                'separate lower optimiser or pick an AID method')
        params = list(params)
        clock = _Clock(problem.sync)
        path = self.descend(params, problem)
        seconds = dict(lower=clock.lap())
        upper_loss, upper_grad, hypergrad = self.upper_level(
            params, path, problem)
        seconds['upper'] = clock.lap()
        stats: Dict[str, float] = {}
        if hypergrad is None:
            hypergrad = self.correct(path, upper_grad, problem, stats)
        seconds['hypergrad'] = clock.lap()
        return HypergradResult(
            hypergrad=[h.detach() for h in hypergrad],
            upper_grad=[v.detach() for v in upper_grad],
            lower_loss=path.loss,
            lower_grad_norm=path.grad_norm,
            upper_loss=upper_loss.detach(),
            seconds=seconds,
            passes=dict(problem.passes),
            stats=stats)

    def descend(self, params: List[Tensor],
                problem: BilevelProblem) -> LowerPath:
        """``theta* `` by ``k`` lower steps from ``params``."""
        theta = list(params) if self.differentiates_lower else leaves(params)
        points, grads_path = [], []
        for step in range(self.inner_steps):
            loss, grads = problem.lower_gradient(
                theta, create_graph=self.differentiates_lower)
            if step == 0:
                first_loss, first_norm = loss.detach(), norm(grads)
            if self.keeps_path:
                points.append(theta)
                grads_path.append([g.detach() for g in grads])
            theta = self._lower_step(theta, grads, problem)
        return LowerPath(theta, first_loss, first_norm, points, grads_path)

    def _lower_step(self, theta: List[Tensor], grads: List[Tensor],
                    problem: BilevelProblem) -> List[Tensor]:
        if problem.lower_step is not None:
            return leaves(problem.lower_step(theta, grads))
        if self.differentiates_lower:
            return [t - problem.lower_lr * g for t, g in zip(theta, grads)]
        return shifted(theta, grads, -problem.lower_lr)

    def upper_level(
        self, params: List[Tensor], path: LowerPath, problem: BilevelProblem
    ) -> Tuple[Tensor, List[Tensor], Optional[List[Tensor]]]:
        """``U(theta*)``, ``v`` and, for methods that get it in the same
        pass, the hypergradient (else None)."""
        loss, upper_grad = problem.upper_gradient(path.theta_star)
        return loss, upper_grad, None

    def correct(self, path: LowerPath, upper_grad: List[Tensor],
                problem: BilevelProblem,
                stats: Dict[str, float]) -> List[Tensor]:
        """The hypergradient from ``v = upper_grad``; may record
        diagnostics in ``stats``."""
        raise NotImplementedError(
            f'{type(self).__name__} must implement correct()')


class FiniteDifference(Hypergradient):
    """Base of the methods whose Hessian-vector products are differences of
    the lower gradient, ``eps = alpha / |direction|``.

    Args:
        alpha: perturbation size ``eps |direction|``.
        inner_steps, lower_lr: see :class:`Hypergradient`.
    """

    def __init__(self, inner_steps: int = 1,
                 lower_lr: Optional[float] = None, alpha: float = 0.01):
        super().__init__(inner_steps, lower_lr)
        if not alpha > 0:
            raise ValueError(
                f'{type(self).__name__}: alpha must be > 0, got {alpha!r}')
        self.alpha = alpha


class HessianSolve(Hypergradient):
    """Base of the methods that apply a function of ``gamma H(theta*)`` to
    ``v`` through Hessian-vector products by double backward.

    Passes: ``(k + 1)`` x F + ``k`` x B of ``L_pred``, one B with graph,
    one double backward per product, F + B of ``U``.

    Args:
        iterations: Hessian-vector products (series terms / CG iterations).
        inner_steps, lower_lr: see :class:`Hypergradient`.
    """

    def __init__(self, inner_steps: int = 1,
                 lower_lr: Optional[float] = None, iterations: int = 5):
        super().__init__(inner_steps, lower_lr)
        self.iterations = _count(self, 'iterations', iterations)

    def correct(self, path: LowerPath, upper_grad: List[Tensor],
                problem: BilevelProblem,
                stats: Dict[str, float]) -> List[Tensor]:
        hvp = problem.lower_hessian_product(path.theta_star)
        return self.solve(hvp, list(upper_grad), problem.lower_lr, stats)

    def solve(self, hvp: Operator, upper_grad: List[Tensor], lower_lr: float,
              stats: Dict[str, float]) -> List[Tensor]:
        raise NotImplementedError(
            f'{type(self).__name__} must implement solve()')


class KrylovSolve(HessianSolve):
    """Base of the Krylov solvers of ``(I + gamma H(theta*)) x = v``.

    Args:
        tol: stop when the squared residual norm falls to it.
        iterations, inner_steps, lower_lr: see :class:`HessianSolve`.
    """

    def __init__(self, inner_steps: int = 1,
                 lower_lr: Optional[float] = None, iterations: int = 5,
                 tol: float = 1e-10):
        if not tol >= 0:
            raise ValueError(
                f'{type(self).__name__}: tol must be >= 0, got {tol!r}')
        self.tol = tol
        super().__init__(inner_steps, lower_lr, iterations)
