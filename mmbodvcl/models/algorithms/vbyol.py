"""V-BYOL (and its BOD-VCL form)."""
from typing import Dict, List, Optional

from mmaction.registry import MODELS
from torch import Tensor

from .momentum import MomentumVCL


@MODELS.register_module()
class VBYOL(MomentumVCL):
    """V-BYOL: the predictor's output for each view regresses the momentum
    encoder's embedding of every other view (``2 - 2 cos``); no negatives.

    The projector is the neck's per-frame MLP (2 layers, hidden 4096 for
    BYOL); the predictor lives in the head (``BYOLPredictionHead``), one per
    part of the decoupler.

    Args:
        base_momentum: ``gamma_0``. Defaults to 0.996.
        total_iters: Length of the momentum schedule; None uses the
            Runner's ``max_iters``.
        **kwargs: :class:`BaseVCL`'s arguments.
    """

    def __init__(self,
                 *args,
                 base_momentum: float = 0.996,
                 total_iters: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(
            *args,
            base_momentum=base_momentum,
            total_iters=total_iters,
            **kwargs)

    def contrastive_loss(self, parts: Dict[str, Tensor],
                         inputs: List[Tensor]) -> Dict[str, Tensor]:
        targets = self.target_parts(inputs)
        return {
            f'loss_{part}': self.heads[part].loss(online, targets[part])
            for part, online in parts.items()
        }
