"""Data parallel without DDP's gradient reducer, for the bi-level step.

``MMDistributedDataParallel.train_step`` computes one loss and calls
``optim_wrapper.update_params(loss)``, and torch's DDP reducer does not fit
several backward passes (or double backward) per step. This wrapper
therefore installs no gradient hooks at all: it makes every rank start from
rank 0's parameters and buffers and calls the model's own ``train_step``,
which hands its losses to ``BiLevelOptimWrapper.update_params_bilevel``;
the optim wrapper averages every gradient and Hessian-vector product across
ranks itself.
"""
import warnings
from typing import Dict, Union

import torch
from mmengine.dist import broadcast
# The root registry: ``Runner.wrap_model`` resolves the type with
# ``MODEL_WRAPPERS.get``, which does not look into mmaction's child.
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

from mmbodvcl.compat import revert_sync_batchnorm_on_cpu

from ..optim_wrappers.bilevel_optim_wrapper import BiLevelOptimWrapper


@MODEL_WRAPPERS.register_module()
class ReducerFreeDataParallel(nn.Module):
    """Data parallel whose gradients the optim wrapper averages
    (``BiLevelOptimWrapper``), not a DDP reducer;
    ``model_wrapper_cfg=dict(type='ReducerFreeDataParallel')``.

    Args:
        module: the model (an ``mmengine.model.BaseModel`` whose
            ``train_step`` drives ``BiLevelOptimWrapper``).
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
        if not isinstance(optim_wrapper, BiLevelOptimWrapper):
            raise TypeError(
                f'{type(self).__name__} averages gradients only through '
                'BiLevelOptimWrapper, but the optim wrapper is '
                f'{type(optim_wrapper).__name__}; use optim_wrapper=dict('
                "type='BiLevelOptimWrapper', ...), or MMEngine's default "
                'model wrapper for single-level training')
        return self.module.train_step(data, optim_wrapper)

    def val_step(self, data: Union[dict, tuple, list]) -> list:
        return self.module.val_step(data)

    def test_step(self, data: Union[dict, tuple, list]) -> list:
        return self.module.test_step(data)

    def forward(self, *args, **kwargs):
        return self.module(*args, **kwargs)


@MODEL_WRAPPERS.register_module()
class BiLevelDistributedDataParallel(ReducerFreeDataParallel):
    """``ReducerFreeDataParallel`` under its former name (deprecated), so
    that existing configs build."""

    def __init__(self, module: nn.Module) -> None:
        warnings.warn(
            'BiLevelDistributedDataParallel is deprecated: use '
            "model_wrapper_cfg=dict(type='ReducerFreeDataParallel'), the "
            'same wrapper under a name that says what it does',
            FutureWarning,
            stacklevel=2)
        super().__init__(module)
