"""``BiLevelOptimWrapperConstructor``: build-time checks of the bi-level
step."""
from mmengine.model import is_model_wrapper
from mmengine.optim import DefaultOptimWrapperConstructor, OptimWrapper
# The root registry: ``build_optim_wrapper`` looks the constructor up there.
from mmengine.registry import OPTIM_WRAPPER_CONSTRUCTORS
from torch import nn

from .bilevel_optim_wrapper import BiLevelOptimWrapper


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class BiLevelOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """MMEngine's default constructor (``paramwise_cfg`` included) that
    refuses, when the Runner builds the optimiser wrapper, what the bi-level
    step cannot train:

    * a model without a lower-level loss (``has_lower_loss`` is not True,
      e.g. a plain V-CL model with ``decouple=False``);
    * a model wrapper other than ``ReducerFreeDataParallel`` (under
      DDP; stock ``MMDistributedDataParallel`` would compute one loss and
      skip the lower level);
    * an optimiser wrapper other than ``BiLevelOptimWrapper``.

    ``optim_wrapper=dict(type='BiLevelOptimWrapper',
    constructor='BiLevelOptimWrapperConstructor', ...)``.
    """

    def __call__(self, model: nn.Module) -> OptimWrapper:
        # Imported here: the DDP wrapper imports the optim wrapper.
        from ..model_wrappers import ReducerFreeDataParallel
        if is_model_wrapper(model) and not isinstance(
                model, ReducerFreeDataParallel):
            raise TypeError(
                f'BiLevelOptimWrapper cannot train through '
                f'{type(model).__name__}, which computes a single loss; set '
                "model_wrapper_cfg=dict(type='ReducerFreeDataParallel')"
                ' in the config')
        module = model.module if is_model_wrapper(model) else model
        if getattr(module, 'has_lower_loss', False) is not True:
            raise ValueError(
                f'BiLevelOptimWrapper needs a lower-level loss, but '
                f'{type(module).__name__}.has_lower_loss is not True (for '
                'the V-CL algorithms: decouple=True); train a single-level '
                "model with optim_wrapper=dict(type='OptimWrapper', ...)")
        optim_wrapper = super().__call__(model)
        if not isinstance(optim_wrapper, BiLevelOptimWrapper):
            raise TypeError(
                'BiLevelOptimWrapperConstructor builds BiLevelOptimWrapper '
                f'only, got {type(optim_wrapper).__name__}; set '
                "optim_wrapper.type='BiLevelOptimWrapper' or drop the "
                'constructor')
        return optim_wrapper
