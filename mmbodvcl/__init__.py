"""BOD-VCL for MMAction2.

``import mmbodvcl`` (or ``custom_imports=dict(imports=['mmbodvcl'])``) applies
the stack's compatibility fixes first, then registers every component into
MMAction2's registries (``mmaction.registry``).
"""
from . import compat

compat.apply()

from . import datasets, engine, evaluation, models  # noqa: E402,F401
from .version import __version__  # noqa: E402

__all__ = ['__version__']
