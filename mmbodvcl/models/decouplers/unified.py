"""No decoupling: plain V-CL scores one embedding per clip."""
from typing import List

from mmaction.registry import MODELS
from torch import Tensor

from .base import BaseDecoupler, Decoupled, Encoder, encode_views


@MODELS.register_module()
class UnifiedEmbedding(BaseDecoupler):
    """The unified embedding ``Z = mean_t z_t`` of each view (part
    ``unified``); what an algorithm uses when no decoupler is configured."""
    parts = ('unified', )

    def forward(self,
                encoder: Encoder,
                views: List[Tensor],
                with_lower_loss: bool = False) -> Decoupled:
        return Decoupled({'unified': encode_views(encoder, views).mean(-1)})
