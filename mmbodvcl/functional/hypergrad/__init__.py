"""Hypergradient methods of the bi-level step, one small class each.

A new method is a :class:`Hypergradient` subclass in a new file here (its
constructor arguments are its configuration) plus one registration line in
``mmbodvcl/engine/hypergradients.py``.
"""
from .aid_cg import AidCg, KrylovSolve
from .aid_fd import AidFd, FiniteDifference
from .aid_minres import AidMinres
from .aid_nmn import AidNmn, HessianSolve
from .base import BilevelProblem, HypergradResult, Hypergradient, LowerPath
from .first_order import FirstOrder
from .itd_fd import ItdFd
from .itd_rmad import ItdRmad

__all__ = [
    'AidCg', 'AidFd', 'AidMinres', 'AidNmn', 'BilevelProblem',
    'FiniteDifference', 'FirstOrder', 'HessianSolve', 'HypergradResult',
    'Hypergradient', 'ItdFd', 'ItdRmad', 'KrylovSolve', 'LowerPath'
]
