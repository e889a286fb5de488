from .koopman_neck import KoopmanNeck

__all__ = ['KoopmanNeck']
