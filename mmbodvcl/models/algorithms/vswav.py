"""V-SwAV (and its BOD-VCL form)."""
from mmaction.registry import MODELS

from .base import BaseVCL


@MODELS.register_module()
class VSwAV(BaseVCL):
    """V-SwAV: swapped prediction of Sinkhorn codes over learnable
    prototypes (``SwAVPrototypeHead``: 1000 prototypes renormalised after
    every step, frozen for ``freeze_prototypes_iters``; ``SwAVLoss``:
    temperature 0.1, epsilon 0.05, 3 Sinkhorn rounds with sums all-reduced
    across ranks). Each part of the decoupler has
    their own prototypes.
    """
