from .after_optim_step_hook import AfterOptimStepHook
from .preemption_hook import PreemptionHook

__all__ = ['AfterOptimStepHook', 'PreemptionHook']
