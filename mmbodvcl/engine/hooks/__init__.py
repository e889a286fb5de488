from .knn_monitor_hook import KNNMonitorHook

__all__ = ['KNNMonitorHook']
