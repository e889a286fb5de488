"""ITD-RMAD: reverse mode through the unrolled lower steps."""
from typing import List, Optional, Tuple

from torch import Tensor

from .base import BilevelProblem, Hypergradient, LowerPath


class ItdRmad(Hypergradient):
    """Exact hypergradient of the unrolled map, ``prod_j (I - gamma
    H(theta_j)) v``, by reverse-mode differentiation through the ``k``
    lower steps (their graphs are built with ``create_graph``).

    Passes: ``k`` x (F + B with graph of ``L_pred``), F of ``U`` and one
    reverse pass through ``U`` and the ``k`` lower graphs (double backward),
    which gives ``v`` and the hypergradient together.
    """
    unrolled = True
    differentiates_lower = True

    def upper_level(
        self, params: List[Tensor], path: LowerPath, problem: BilevelProblem
    ) -> Tuple[Tensor, List[Tensor], Optional[List[Tensor]]]:
        # v is the gradient at theta*, the hypergradient the one at theta.
        loss, grads = problem.upper_gradient(path.theta_star, also=params)
        return loss, grads[:len(params)], grads[len(params):]
