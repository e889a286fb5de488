"""AID-MINRES: ``(I + gamma H)^-1 v`` by MINRES, for indefinite ``H``."""
import math
from typing import Dict, List

import torch
from torch import Tensor


from .base import KrylovSolve, Operator, dot


class AidMinres(KrylovSolve):
    """MINRES (Paige & Saunders, 1975) on ``(I + gamma H(theta*)) x = v``
    from ``x = 0``: the iterate of least residual in the same Krylov space
    CG searches, for any symmetric system, so it needs no positive
    curvature (``I + gamma H`` is indefinite when ``H`` has eigenvalues
    below ``-1/gamma``, as on the tiny V-SimCLR at initialisation, where
    CG stops; docs/bilevel.md has the measured residuals). ``iterations``
    steps, or until the squared residual norm falls to ``tol``. The
    scalar recurrences run in float64.

    Records ``minres_iterations`` and ``minres_residual`` (``|r| / |v|``)
    in the result's ``stats``.

    Args: see :class:`KrylovSolve`.
    """

    def solve(self, hvp: Operator, upper_grad: List[Tensor], lower_lr: float,
              stats: Dict[str, float]) -> List[Tensor]:
        zeros = [torch.zeros_like(v) for v in upper_grad]
        x, w, w_prev = zeros, zeros, zeros
        r_prev, r_cur, y = upper_grad, upper_grad, upper_grad
        beta0 = beta = math.sqrt(dot(y, y).item())
        beta_prev, dbar, eps_cur, phibar = 0.0, 0.0, 0.0, beta0
        cs, sn = -1.0, 0.0
        steps = 0
        while steps < self.iterations and beta > 0 and phibar**2 > self.tol:
            vec = torch._foreach_div(y, beta)
            y = torch._foreach_add(vec, hvp(vec), alpha=lower_lr)
            if steps:
                y = torch._foreach_add(y, r_prev, alpha=-beta / beta_prev)
            alpha = dot(vec, y).item()
            y = torch._foreach_add(y, r_cur, alpha=-alpha / beta)
            r_prev, r_cur, beta_prev = r_cur, y, beta
            beta = math.sqrt(dot(y, y).item())
            # Apply the previous rotation, then make the next one.
            eps_prev, delta = eps_cur, cs * dbar + sn * alpha
            gbar, eps_cur, dbar = sn * dbar - cs * alpha, sn * beta, -cs * beta
            gamma = max(math.hypot(gbar, beta), 1e-300)
            cs, sn = gbar / gamma, beta / gamma
            phi, phibar = cs * phibar, sn * phibar
            w_prev, w = w, torch._foreach_div(
                torch._foreach_add(
                    torch._foreach_add(vec, w_prev, alpha=-eps_prev), w,
                    alpha=-delta), gamma)
            x = torch._foreach_add(x, w, alpha=phi)
            steps += 1
        stats.update(minres_iterations=float(steps),
                     minres_residual=phibar / beta0 if beta0 else 0.0)
        return x
