"""``AfterOptimStepHook``: the model's post-step updates in one place."""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.optim import OptimWrapper
# The root registry: found from mmaction's child registry and any other
# default scope.
from mmengine.registry import HOOKS


@HOOKS.register_module()
class AfterOptimStepHook(Hook):
    """Calls the (unwrapped) model's ``after_optim_step()`` after every
    training iteration in which the optimiser stepped (with gradient
    accumulation, every ``accumulative_counts`` iterations): the
    momentum-encoder EMA of V-MoCo / V-BYOL and the prototype normalisation
    of V-SwAV. It runs with any model wrapper (stock
    ``MMDistributedDataParallel`` included) and any optimiser wrapper.

    ``default_hooks = dict(after_optim_step=dict(type='AfterOptimStepHook'))``
    (in ``configs/_base_/default_runtime.py``; ``custom_hooks`` works too).
    """
    priority = 'ABOVE_NORMAL'  # before loggers and checkpoints see the model

    @staticmethod
    def _model(runner):
        model = runner.model
        return model.module if is_model_wrapper(model) else model

    def before_train(self, runner) -> None:
        model = self._model(runner)
        if not callable(getattr(model, 'after_optim_step', None)):
            raise TypeError(
                f'AfterOptimStepHook: {type(model).__name__} has no '
                'after_optim_step() method; remove the hook from '
                'custom_hooks for this model')
        if not isinstance(runner.optim_wrapper, OptimWrapper):
            raise TypeError(
                'AfterOptimStepHook needs a single OptimWrapper to tell when '
                f'the optimiser stepped, got '
                f'{type(runner.optim_wrapper).__name__}')

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch=None,
                         outputs=None) -> None:
        if runner.optim_wrapper.should_update():
            self._model(runner).after_optim_step()
