from .formatting import PackMultiViewInputs
from .loading import (MultiViewDecordDecode, MultiViewDecordInit,
                      MultiViewSampleFrames, VideoReadError,
                      VideoTooShortError)
from .processing import VideoColorJitter, VideoRandomGrayscale
from .wrappers import MultiViewAugment

__all__ = [
    'MultiViewDecordInit', 'MultiViewSampleFrames', 'MultiViewDecordDecode',
    'MultiViewAugment', 'VideoColorJitter', 'VideoRandomGrayscale',
    'PackMultiViewInputs',
    'VideoReadError', 'VideoTooShortError'
]
