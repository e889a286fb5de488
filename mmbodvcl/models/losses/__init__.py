from .byol_loss import BYOLCosineLoss
from .concept_losses import (ConceptAlignmentLoss, ConceptEntropyLoss,
                             ConceptReconstructionLoss, ConceptSparsityLoss,
                             LocalConceptContrastLoss)
from .info_nce_loss import MultiViewInfoNCELoss, QueueInfoNCELoss
from .swav_loss import SwAVLoss

__all__ = [
    'BYOLCosineLoss', 'ConceptAlignmentLoss', 'ConceptEntropyLoss',
    'ConceptReconstructionLoss', 'ConceptSparsityLoss',
    'LocalConceptContrastLoss', 'MultiViewInfoNCELoss', 'QueueInfoNCELoss',
    'SwAVLoss'
]
