from .reducer_free_ddp import (BiLevelDistributedDataParallel,
                               ReducerFreeDataParallel)
from .vcl_ddp import VCLDistributedDataParallel

__all__ = [
    'BiLevelDistributedDataParallel', 'ReducerFreeDataParallel',
    'VCLDistributedDataParallel'
]
