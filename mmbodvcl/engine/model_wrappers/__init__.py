from .bilevel_ddp import BiLevelDistributedDataParallel
from .vcl_ddp import VCLDistributedDataParallel

__all__ = ['BiLevelDistributedDataParallel', 'VCLDistributedDataParallel']
