"""Hypergradient methods of the bi-level step, one small class each.

A new method is a subclass of :class:`Hypergradient` (or of one of the
families in ``base.py``: :class:`FiniteDifference`, :class:`HessianSolve`,
:class:`KrylovSolve`) in a new file here (its constructor arguments are its
configuration) plus one registration line in
``mmbodvcl/engine/hypergradients.py``.
"""
from .aid_cg import AidCg
from .aid_fd import AidFd
from .aid_minres import AidMinres
from .aid_nmn import AidNmn
from .base import (BilevelProblem, FiniteDifference, HessianSolve,
                   HypergradResult, Hypergradient, KrylovSolve, LowerPath)
from .first_order import FirstOrder
from .itd_fd import ItdFd
from .itd_rmad import ItdRmad

__all__ = [
    'AidCg', 'AidFd', 'AidMinres', 'AidNmn', 'BilevelProblem',
    'FiniteDifference', 'FirstOrder', 'HessianSolve', 'HypergradResult',
    'Hypergradient', 'ItdFd', 'ItdRmad', 'KrylovSolve', 'LowerPath'
]
