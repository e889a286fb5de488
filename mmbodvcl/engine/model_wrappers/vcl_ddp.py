"""Data-parallel wrapper for single-level V-CL training.

``MMDistributedDataParallel.train_step`` runs the optimisation itself and
never calls the model's ``train_step``, so the model's per-iteration
bookkeeping (momentum-encoder EMA, SwAV prototype normalisation) would never
run under DDP. This wrapper keeps MMEngine's step and adds that call.
"""
from typing import Dict, Union

import torch
from mmengine.model import MMDistributedDataParallel
from mmengine.optim import OptimWrapper
# The root registry: ``Runner.wrap_model`` resolves the type with
# ``MODEL_WRAPPERS.get``, which does not look into mmaction's child.
from mmengine.registry import MODEL_WRAPPERS


@MODEL_WRAPPERS.register_module()
class VCLDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that calls the model's
    ``after_optim_step()`` once the parameters moved; use it with
    ``model_wrapper_cfg=dict(type='VCLDistributedDataParallel')`` for the
    single-level configs (baselines, "+ L_pred", single-level ablation)."""

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, torch.Tensor]:
        if hasattr(optim_wrapper, 'bilevel_step'):
            raise TypeError(
                'VCLDistributedDataParallel runs single-level steps; a '
                'BiLevelOptimWrapper needs model_wrapper_cfg=dict(type='
                "'BiLevelDistributedDataParallel')")
        log_vars = super().train_step(data, optim_wrapper)
        if optim_wrapper.should_update():
            self.module.after_optim_step()
        return log_vars
