"""AID-FD (DARTS): ``v - gamma H(theta*) v`` by a central difference."""
from typing import Dict, List

import torch
from torch import Tensor

from .base import BilevelProblem, FiniteDifference, LowerPath, norm, shifted


class AidFd(FiniteDifference):
    """DARTS' hypergradient ``v - gamma (g(theta* + eps v) - g(theta* - eps
    v)) / (2 eps)``, ``g = grad L_pred``, ``eps = alpha / |v|`` (betty-ml's
    ``darts``). For ``k = 1`` it approximates the unrolled ``(I - gamma
    H(theta)) v`` up to O(gamma^2) (``H`` at ``theta*`` instead of
    ``theta``) and O(eps^2).

    Passes: ``(k + 2)`` x (F + B of ``L_pred``) + F + B of ``U``.

    Args: see :class:`FiniteDifference` (``alpha = 0.01``).
    """

    def correct(self, path: LowerPath, upper_grad: List[Tensor],
                problem: BilevelProblem,
                stats: Dict[str, float]) -> List[Tensor]:
        size = norm(upper_grad).item()
        if size == 0.0:
            return list(upper_grad)
        eps = self.alpha / size
        _, plus = problem.lower_gradient(
            shifted(path.theta_star, upper_grad, eps))
        _, minus = problem.lower_gradient(
            shifted(path.theta_star, upper_grad, -eps))
        # v - gamma (plus - minus) / (2 eps), in place in the fresh ``plus``.
        torch._foreach_sub_(plus, minus)
        torch._foreach_mul_(plus, -problem.lower_lr / (2.0 * eps))
        torch._foreach_add_(plus, upper_grad)
        return plus
