from .byol_loss import BYOLCosineLoss
from .info_nce_loss import MultiViewInfoNCELoss, QueueInfoNCELoss
from .swav_loss import SwAVLoss

__all__ = [
    'BYOLCosineLoss', 'MultiViewInfoNCELoss', 'QueueInfoNCELoss', 'SwAVLoss'
]
