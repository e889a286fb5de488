from .after_optim_step_hook import AfterOptimStepHook
from .knn_monitor_hook import KNNMonitorHook
from .preemption_hook import PreemptionHook

__all__ = ['AfterOptimStepHook', 'KNNMonitorHook', 'PreemptionHook']
