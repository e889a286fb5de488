from .per_frame_vit import PerFrameViT
from .s3dg import S3DG

__all__ = ['PerFrameViT', 'S3DG']
