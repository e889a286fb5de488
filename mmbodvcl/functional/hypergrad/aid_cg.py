"""AID-CG: ``(I + gamma H)^-1 v`` by truncated conjugate gradient."""
from typing import Dict, List

import torch
from torch import Tensor


from .base import KrylovSolve, Operator, dot


class AidCg(KrylovSolve):
    """Conjugate gradient on ``(I + gamma H(theta*)) x = v`` from ``x = 0``
    (``iterations`` steps, or until ``|r|^2 <= tol``), truncated as in
    Newton-CG (Nocedal & Wright, Algorithm 7.1): at a direction of
    non-positive curvature of ``I + gamma H`` (``H`` indefinite with
    eigenvalues below ``-1/gamma``, as at initialisation) it stops at the
    last iterate, and if that is the first one it returns ``v`` (the
    first-order hypergradient), so it never divides by a non-positive
    curvature. The scalar recurrences run in float64.

    Records ``cg_iterations`` (CG steps taken) and ``cg_truncated`` (1 when
    it stopped at non-positive curvature) in the result's ``stats``.

    Args: see :class:`KrylovSolve`.
    """

    def solve(self, hvp: Operator, upper_grad: List[Tensor], lower_lr: float,
              stats: Dict[str, float]) -> List[Tensor]:
        x = [torch.zeros_like(v) for v in upper_grad]
        residual, direction = upper_grad, upper_grad
        rr = dot(residual, residual)
        steps, truncated = 0, False
        while steps < self.iterations and rr.item() > self.tol:
            a_dir = torch._foreach_add(direction, hvp(direction),
                                       alpha=lower_lr)
            curvature = dot(direction, a_dir)
            if curvature.item() <= 0:
                truncated = True
                break
            step = (rr / curvature).item()
            x = torch._foreach_add(x, direction, alpha=step)
            residual = torch._foreach_add(residual, a_dir, alpha=-step)
            rr_next = dot(residual, residual)
            direction = torch._foreach_add(
                residual, direction, alpha=(rr_next / rr).item())
            rr = rr_next
            steps += 1
        stats.update(cg_iterations=float(steps), cg_truncated=float(truncated))
        return x if steps else list(upper_grad)
