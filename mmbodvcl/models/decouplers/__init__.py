from .base import BaseDecoupler, Decoupled, Encoder, encode_views
from .derived_inputs import DerivedInputDecoupler
from .koopman import KoopmanDecoupler
from .unified import UnifiedEmbedding

__all__ = [
    'BaseDecoupler', 'Decoupled', 'DerivedInputDecoupler', 'Encoder',
    'KoopmanDecoupler', 'UnifiedEmbedding', 'encode_views'
]
