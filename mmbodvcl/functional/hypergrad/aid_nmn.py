"""AID-NMN: ``(I + gamma H)^-1 v`` by a truncated Neumann series."""
from typing import Dict, List

import torch
from torch import Tensor

from .base import HessianSolve, Operator


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
