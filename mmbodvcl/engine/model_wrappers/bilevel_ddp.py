"""Data-parallel wrapper for models that run their own bi-level step.

``MMDistributedDataParallel.train_step`` does not call the model's
``train_step``, and torch's DDP reducer does not fit several backward passes
(or double backward) per step. This wrapper therefore does no gradient hooks
at all: it makes every rank start from rank 0's parameters and buffers and
calls the model's own ``train_step``; :class:`BiLevelOptimWrapper` averages
every gradient and Hessian-vector product across ranks itself.
"""
from typing import Dict, Union

import torch
from mmengine.dist import broadcast
# The root registry: ``Runner.wrap_model`` resolves the type with
# ``MODEL_WRAPPERS.get``, which does not look into mmaction's child.
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

from mmbodvcl.compat import revert_sync_batchnorm_on_cpu


@MODEL_WRAPPERS.register_module()
class BiLevelDistributedDataParallel(nn.Module):
    """Bi-level data parallel; ``model_wrapper_cfg=dict(type=
    'BiLevelDistributedDataParallel')``.

    Args:
        module: the model (an ``mmengine.model.BaseModel`` whose
            ``train_step`` calls ``optim_wrapper.bilevel_step``).
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        revert_sync_batchnorm_on_cpu(module)
        self.module = module
        with torch.no_grad():
            for tensor in list(module.parameters()) + list(module.buffers()):
                broadcast(tensor, src=0)

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper) -> Dict[str, torch.Tensor]:
        if not hasattr(optim_wrapper, 'bilevel_step'):
            raise TypeError(
                'BiLevelDistributedDataParallel averages gradients only '
                'through BiLevelOptimWrapper.bilevel_step, but the optim '
                f'wrapper is {type(optim_wrapper).__name__}; use '
                "optim_wrapper=dict(type='BiLevelOptimWrapper', ...), or "
                "model_wrapper_cfg=dict(type='VCLDistributedDataParallel') "
                'for single-level training')
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        return self.module.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        return self.module.test_step(data)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)
