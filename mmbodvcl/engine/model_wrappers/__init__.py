from .bilevel_ddp import BiLevelDistributedDataParallel

__all__ = ['BiLevelDistributedDataParallel']
