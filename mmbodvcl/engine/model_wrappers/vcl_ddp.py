"""Deprecated alias of MMEngine's ``MMDistributedDataParallel``.

Single-level training needs no wrapper of ours any more: the model's
post-step updates run in ``AfterOptimStepHook``. The name stays registered
so that existing configs load.
"""
import warnings

from mmengine.model import MMDistributedDataParallel
# The root registry: ``Runner.wrap_model`` resolves the type with
# ``MODEL_WRAPPERS.get``, which does not look into mmaction's child.
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class VCLDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` under its former name (deprecated):
    use ``model_wrapper_cfg=dict(type='MMDistributedDataParallel')`` (or
    none) with ``AfterOptimStepHook`` among the default or custom hooks."""
    _warned = False

    def __init__(self, *args, **kwargs) -> None:
        if not VCLDistributedDataParallel._warned:
            VCLDistributedDataParallel._warned = True
            warnings.warn(
                'VCLDistributedDataParallel is deprecated and now plain '
                "MMDistributedDataParallel: drop model_wrapper_cfg (or use "
                "type='MMDistributedDataParallel') and make sure "
                "the hooks hold dict(type='AfterOptimStepHook') (as "
                'configs/_base_/default_runtime.py does), which runs the '
                'momentum-encoder / prototype updates',
                FutureWarning,
                stacklevel=2)
        super().__init__(*args, **kwargs)
