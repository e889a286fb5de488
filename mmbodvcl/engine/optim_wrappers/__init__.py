from .bilevel_optim_wrapper import BiLevelOptimWrapper
from .lars import LARS

__all__ = ['BiLevelOptimWrapper', 'LARS']
