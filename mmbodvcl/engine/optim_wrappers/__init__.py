from .bilevel_constructor import BiLevelOptimWrapperConstructor
from .bilevel_optim_wrapper import BiLevelOptimWrapper
from .lars import LARS

__all__ = ['BiLevelOptimWrapper', 'BiLevelOptimWrapperConstructor', 'LARS']
