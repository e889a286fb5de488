from .base import BaseVCL, BaseVideoSSL
from .momentum import CosineMomentumEncoder, MomentumVCL
from .static_dynamic_concepts import StaticDynamicConcepts
from .vbyol import VBYOL
from .vmoco import VMoCo
from .vsimclr import VSimCLR
from .vswav import VSwAV

__all__ = [
    'BaseVCL', 'BaseVideoSSL', 'CosineMomentumEncoder', 'MomentumVCL',
    'StaticDynamicConcepts', 'VBYOL', 'VMoCo', 'VSimCLR', 'VSwAV'
]
