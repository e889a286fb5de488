"""BYOL's regression loss over video views."""
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from mmbodvcl.functional.contrastive import byol_loss


@MODELS.register_module()
class BYOLCosineLoss(BaseModule):
    """``2 - 2 cos(prediction_j, target_k)`` over all pairs of different
    views of a video; no negatives."""

    def forward(self, predictions: Tensor, targets: Tensor) -> Tensor:
        """``predictions (V, N, D)``, ``targets (V, N, D)`` -> scalar loss."""
        return byol_loss(predictions, targets)
