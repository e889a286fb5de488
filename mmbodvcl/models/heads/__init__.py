from .byol_head import BYOLPredictionHead
from .contrastive_head import MultiViewContrastiveHead
from .moco_head import MoCoQueueHead
from .swav_head import SwAVPrototypeHead

__all__ = [
    'BYOLPredictionHead', 'MoCoQueueHead', 'MultiViewContrastiveHead',
    'SwAVPrototypeHead'
]
