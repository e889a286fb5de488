"""LARS (You et al., 2017), the optimiser of SimCLR-style recipes.

Neither MMEngine 0.10.7 nor MMAction2 1.2.0 ships one. BatchNorm and bias
parameters are excluded from the trust-ratio adaptation through a
``lars_exclude`` flag per parameter group, and from weight decay through
``decay_mult=0``; MMEngine's ``DefaultOptimWrapperConstructor`` copies both
from ``paramwise_cfg.custom_keys`` into the groups::

    optim_wrapper = dict(
        type='BiLevelOptimWrapper',
        optimizer=dict(type='LARS', lr=4.8, momentum=0.9, weight_decay=1e-6),
        paramwise_cfg=dict(custom_keys={
            'bn': dict(decay_mult=0., lars_exclude=True),
            'bias': dict(decay_mult=0., lars_exclude=True)}))
"""
from typing import Callable, Iterable, Optional

import torch
from mmengine.registry import OPTIMIZERS
from torch.optim import Optimizer


@OPTIMIZERS.register_module()
class LARS(Optimizer):
    """SGD with momentum and a layer-wise trust ratio.

    For a parameter ``w`` with gradient ``g`` in a group without
    ``lars_exclude``: ``local_lr = eta |w| / (|g| + weight_decay |w| + eps)``
    (1 when ``|w|`` or ``|g|`` is 0), ``d = local_lr (g + weight_decay w)``,
    then momentum SGD on ``d`` with the group's ``lr``. Excluded groups take
    plain momentum SGD on ``g + weight_decay w``.

    Args:
        params: parameters or parameter groups; a group may set
            ``lars_exclude=True``.
        lr: base learning rate.
        momentum, dampening, nesterov, weight_decay: as in ``torch.optim.SGD``.
        eta: trust coefficient.
        eps: added to the denominator of the trust ratio.
    """

    def __init__(self,
                 params: Iterable,
                 lr: float,
                 momentum: float = 0.0,
                 weight_decay: float = 0.0,
                 dampening: float = 0.0,
                 eta: float = 1e-3,
                 nesterov: bool = False,
                 eps: float = 1e-8) -> None:
        if lr < 0:
            raise ValueError(f'LARS: invalid learning rate lr={lr}')
        if momentum < 0:
            raise ValueError(f'LARS: invalid momentum={momentum}')
        if weight_decay < 0:
            raise ValueError(f'LARS: invalid weight_decay={weight_decay}')
        if eta < 0:
            raise ValueError(f'LARS: invalid eta={eta}')
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError('LARS: nesterov momentum needs momentum > 0 and '
                             'dampening = 0')
        defaults = dict(
            lr=lr,
            momentum=momentum,
            weight_decay=weight_decay,
            dampening=dampening,
            eta=eta,
            nesterov=nesterov,
            eps=eps,
            lars_exclude=False)
        super().__init__(params, defaults)

    @torch.no_grad()
    def step(self, closure: Optional[Callable] = None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            weight_decay = group['weight_decay']
            momentum = group['momentum']
            for param in group['params']:
                if param.grad is None:
                    continue
                grad = param.grad
                if group['lars_exclude']:
                    update = grad.add(param, alpha=weight_decay)
                else:
                    weight_norm = torch.linalg.vector_norm(param)
                    grad_norm = torch.linalg.vector_norm(grad)
                    trust = group['eta'] * weight_norm / (
                        grad_norm + weight_decay * weight_norm + group['eps'])
                    local_lr = torch.where(
                        (weight_norm > 0) & (grad_norm > 0), trust,
                        torch.ones_like(trust))
                    update = grad.add(param, alpha=weight_decay) * local_lr
                if momentum != 0:
                    state = self.state[param]
                    if 'momentum_buffer' not in state:
                        buf = state['momentum_buffer'] = update.clone()
                    else:
                        buf = state['momentum_buffer']
                        buf.mul_(momentum).add_(
                            update, alpha=1 - group['dampening'])
                    update = update.add(
                        buf, alpha=momentum) if group['nesterov'] else buf
                param.add_(update, alpha=-group['lr'])
        return loss
