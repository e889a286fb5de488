"""AID-NMN: ``(I + gamma H)^-1 v`` by a truncated Neumann series."""
from typing import Dict, List, Optional

import torch
from torch import Tensor

from .base import BilevelProblem, Hypergradient, LowerPath, Operator


def _check_iterations(owner: str, iterations: int) -> None:
    if isinstance(iterations, bool) or not isinstance(
            iterations, int) or iterations < 1:
        raise ValueError(f'{owner}: iterations must be an integer >= 1, got '
                         f'{iterations!r}')


class HessianSolve(Hypergradient):
    """Base of the methods that apply a function of ``gamma H(theta*)`` to
    ``v`` through Hessian-vector products by double backward.

    Passes: ``(k + 1)`` x F + ``k`` x B of ``L_pred``, one B with graph,
    one double backward per product, F + B of ``U``.

    Args:
        iterations: Hessian-vector products (series terms / CG iterations).
        inner_steps, lower_lr: see :class:`Hypergradient`.
    """

    def __init__(self,
                 inner_steps: int = 1,
                 lower_lr: Optional[float] = None,
                 iterations: int = 5) -> None:
        super().__init__(inner_steps, lower_lr)
        _check_iterations(type(self).__name__, iterations)
        self.iterations = iterations

    def correct(self, path: LowerPath, upper_grad: List[Tensor],
                problem: BilevelProblem,
                stats: Dict[str, float]) -> List[Tensor]:
        hvp = problem.lower_hessian_product(path.theta_star)
        return self.solve(hvp, list(upper_grad), problem.lower_lr, stats)

    def solve(self, hvp: Operator, upper_grad: List[Tensor], lower_lr: float,
              stats: Dict[str, float]) -> List[Tensor]:
        raise NotImplementedError(
            f'{type(self).__name__} must implement solve()')


class AidNmn(HessianSolve):
    """``sum_{j=0..n} (-gamma H(theta*))^j v``, ``n = iterations`` (betty-ml's
    ``neumann``); converges to ``(I + gamma H)^-1 v`` when ``|gamma H| < 1``.
    """

    def solve(self, hvp: Operator, upper_grad: List[Tensor], lower_lr: float,
              stats: Dict[str, float]) -> List[Tensor]:
        term, total = upper_grad, upper_grad
        for _ in range(self.iterations):
            term = torch._foreach_mul(hvp(term), -lower_lr)
            total = torch._foreach_add(total, term)
        return total
