from .mlp import NamedMLP
from .temporally_local import temporally_local

__all__ = ['NamedMLP', 'temporally_local']
