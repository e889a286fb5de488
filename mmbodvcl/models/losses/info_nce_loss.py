"""InfoNCE losses over video views (V-SimCLR and V-MoCo)."""
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from mmbodvcl.functional.contrastive import (multi_view_info_nce,
                                             queue_info_nce)


class _TemperatureScaledLoss(BaseModule):
    """Holds and checks the softmax temperature shared by the InfoNCE
    losses."""

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f'temperature must be > 0, got {temperature}')
        self.temperature = temperature


@MODELS.register_module()
class MultiViewInfoNCELoss(_TemperatureScaledLoss):
    """Multi-positive InfoNCE over all views of the batch (paper eq. 1-2):
    the other views of a video are its positives, every view of every other
    video on every rank a negative (gathered with gradients).

    Args:
        temperature: ``alpha``. Defaults to 0.1.
    """

    def forward(self, embeddings: Tensor) -> Tensor:
        """``embeddings (V, N, D)`` -> scalar loss."""
        return multi_view_info_nce(embeddings, self.temperature)


@MODELS.register_module()
class QueueInfoNCELoss(_TemperatureScaledLoss):
    """InfoNCE of online queries against the momentum keys of the other
    views of the same video (positives) and a queue of keys (negatives).

    Args:
        temperature: ``alpha``. Defaults to 0.1.
    """

    def forward(self, queries: Tensor, keys: Tensor, queue: Tensor) -> Tensor:
        """``queries (V, N, D)``, ``keys (V, N, D)``, ``queue (K, D)`` ->
        scalar loss."""
        return queue_info_nce(queries, keys, queue, self.temperature)
