from .feature_extractor import VideoFeatureExtractor

__all__ = ['VideoFeatureExtractor']
