"""First-order hypergradient: ``v = grad U(theta*)``, no correction."""
from typing import Dict, List

from torch import Tensor

from .base import BilevelProblem, Hypergradient, LowerPath


class FirstOrder(Hypergradient):
    """``v`` itself (ignores how ``theta*`` depends on ``theta``).

    Passes: ``k`` x (F + B of ``L_pred``) + F + B of ``U``.
    """

    def correct(self, path: LowerPath, upper_grad: List[Tensor],
                problem: BilevelProblem,
                stats: Dict[str, float]) -> List[Tensor]:
        return list(upper_grad)
