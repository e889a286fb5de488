"""V-SimCLR (and its BOD-VCL form)."""
from mmaction.registry import MODELS

from .base import BaseVCL


@MODELS.register_module()
class VSimCLR(BaseVCL):
    """V-SimCLR: InfoNCE over all views of the batch, negatives gathered
    across ranks with gradients.

    Use ``head=dict(type='MultiViewContrastiveHead',
    loss=dict(type='MultiViewInfoNCELoss', temperature=0.1))``. See
    :class:`BaseVCL` for ``decoupler`` / ``with_lower_loss`` /
    ``strict_lower``.
    """
