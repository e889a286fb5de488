"""SwAV's swapped-prediction loss with Sinkhorn-Knopp codes."""
import torch
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from mmbodvcl.functional.contrastive import (sinkhorn_knopp,
                                             swapped_prediction_loss)


@MODELS.register_module()
class SwAVLoss(BaseModule):
    """Codes of each view from Sinkhorn-Knopp (sums all-reduced across
    ranks), predicted from the prototype scores of every other view.

    Args:
        temperature: Softmax temperature of the predictions. Defaults to 0.1.
        epsilon: Entropic regularisation of Sinkhorn. Defaults to 0.05.
        sinkhorn_iters: Sinkhorn rounds. Defaults to 3.
    """

    def __init__(self,
                 temperature: float = 0.1,
                 epsilon: float = 0.05,
                 sinkhorn_iters: int = 3) -> None:
        super().__init__()
        if temperature <= 0 or epsilon <= 0 or sinkhorn_iters < 1:
            raise ValueError(
                f'SwAVLoss needs temperature > 0, epsilon > 0 and '
                f'sinkhorn_iters >= 1; got temperature={temperature}, '
                f'epsilon={epsilon}, sinkhorn_iters={sinkhorn_iters}')
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iters = sinkhorn_iters

    def forward(self, scores: Tensor) -> Tensor:
        """``scores (V, N, K)`` cosine similarities to K prototypes ->
        scalar loss."""
        codes = [
            sinkhorn_knopp(view_scores.detach(), self.epsilon,
                           self.sinkhorn_iters) for view_scores in scores
        ]
        return swapped_prediction_loss(scores, torch.stack(codes),
                                       self.temperature)
