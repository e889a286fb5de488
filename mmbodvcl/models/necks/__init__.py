from .per_frame_projection_neck import PerFrameProjectionNeck

__all__ = ['PerFrameProjectionNeck']
