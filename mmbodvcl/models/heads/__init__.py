from .byol_head import BYOLPredictionHead
from .concept_head import ConceptHead
from .contrastive_head import MultiViewContrastiveHead
from .local_concept_contrast import ConceptInput, LocalConceptContrast
from .moco_head import MoCoQueueHead
from .swav_head import SwAVPrototypeHead

__all__ = [
    'BYOLPredictionHead', 'ConceptHead', 'ConceptInput',
    'LocalConceptContrast', 'MoCoQueueHead', 'MultiViewContrastiveHead',
    'SwAVPrototypeHead'
]
