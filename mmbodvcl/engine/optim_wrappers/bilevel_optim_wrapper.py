"""``BiLevelOptimWrapper``: the BOD-VCL bi-level step inside MMEngine.

The mathematics lives in :mod:`mmbodvcl.functional.hypergrad`; this wrapper
evaluates the model's ``loss_lower`` / ``loss_upper`` statelessly at the
tensors the hypergradient asks for, keeps forwards at auxiliary weights free
of side effects, averages gradients across ranks, and hands the
hypergradient to the configured optimiser through MMEngine's
``OptimWrapper`` machinery (accumulation, clipping, schedulers, state).
"""
import logging
from contextlib import contextmanager, nullcontext
from typing import Dict, Iterator, List, Optional, Tuple

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.model import BaseModel
from mmengine.optim import OptimWrapper
# MMEngine's root registries: visible from mmaction's children (parent
# lookup) and from any other default scope.
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS
from torch import Tensor, nn
from torch.func import functional_call
from torch.optim import Optimizer

from mmbodvcl.functional import HYPERGRAD_METHODS, bilevel_hypergradient

_HYPERGRAD_DEFAULTS = dict(
    type='aid_fd',
    alpha=0.01,
    inner_steps=1,
    lower_lr=None,
    iterations=5,
    cg_tol=1e-10)


class _BoundLoss(nn.Module):
    """Calls ``model.<method>(**data)`` so ``functional_call`` can swap the
    model's parameters (keys ``model.<name>``) for other tensors."""

    def __init__(self, model: nn.Module, method: str) -> None:
        super().__init__()
        self.model = model
        self.method = method

    def forward(self, data: dict) -> Dict[str, Tensor]:
        return getattr(self.model, self.method)(**data)


class _DynamicLossScale:
    """fp16 loss scale: halve on overflow, double after ``interval`` clean
    iterations (the policy of ``torch.cuda.amp.GradScaler``)."""

    def __init__(self, init_scale: float = 2.**16, interval: int = 2000):
        self.scale = init_scale
        self.interval = interval
        self.clean_iters = 0

    def update(self, finite: bool) -> None:
        if not finite:
            self.scale /= 2.0
            self.clean_iters = 0
            return
        self.clean_iters += 1
        if self.clean_iters == self.interval:
            self.scale *= 2.0
            self.clean_iters = 0

    def state_dict(self) -> dict:
        return dict(scale=self.scale, clean_iters=self.clean_iters)

    def load_state_dict(self, state: dict) -> None:
        self.scale = state['scale']
        self.clean_iters = state['clean_iters']


def _mean_across_ranks(tensors: List[Tensor]) -> List[Tensor]:
    """Average across ranks in one autograd-aware all-reduce (ITD-RMAD
    differentiates through it)."""
    world_size = get_world_size()
    if world_size == 1 or not tensors:
        return tensors
    from torch.distributed.nn.functional import all_reduce
    flat = torch.cat([t.reshape(-1) for t in tensors])
    flat = all_reduce(flat, op=torch_dist.ReduceOp.SUM) / world_size
    return [
        part.view_as(t)
        for part, t in zip(flat.split([t.numel() for t in tensors]), tensors)
    ]


@OPTIM_WRAPPERS.register_module()
class BiLevelOptimWrapper(OptimWrapper):
    """Optimiser wrapper running BOD-VCL's bi-level step (eq. 23-25).

    Per iteration: ``k`` lower gradient steps on ``L_pred`` from ``theta`` to
    ``theta*`` (stateless, ``theta`` is never modified), ``U = L_A + L_M``
    at ``theta*``, the hypergradient by the configured method, then one
    step of ``optimizer`` on ``theta`` along the hypergradient (with the
    usual clipping and accumulation).

    Args:
        optimizer: the upper-level optimiser (SGD, LARS, ...).
        hypergrad: ``type`` (one of ``itd_rmad``, ``aid_fd`` (default),
            ``aid_nmn``, ``aid_cg``, ``first_order``), ``inner_steps`` (k,
            default 1), ``lower_lr`` (gamma; default: the current learning
            rate of the optimiser's first parameter group, so it follows the
            param schedulers), ``alpha`` (AID-FD, default 0.01),
            ``iterations`` (Neumann terms / CG iterations, default 5),
            ``cg_tol``.
        lower_optimizer: optional optimiser config for the lower steps (e.g.
            ``dict(type='SGD', lr=0.05, momentum=0.9)``). It acts on a
            persistent copy of the parameters, its state is saved in
            :meth:`state_dict`, and its first group's lr is the gamma of the
            hypergradient. Not with ``itd_rmad``.
        use_amp: run the forwards under ``torch.autocast`` (fp16 with a
            dynamic loss scale on CUDA, bf16 on CPU, or ``amp_dtype``).
        amp_dtype: ``'float16'`` or ``'bfloat16'``; default per device.
        accumulative_counts, clip_grad: as in
            :class:`mmengine.optim.OptimWrapper`.
    """

    def __init__(self,
                 optimizer: Optimizer,
                 hypergrad: Optional[dict] = None,
                 lower_optimizer: Optional[dict] = None,
                 use_amp: bool = False,
                 amp_dtype: Optional[str] = None,
                 accumulative_counts: int = 1,
                 clip_grad: Optional[dict] = None) -> None:
        super().__init__(optimizer, accumulative_counts, clip_grad)
        hypergrad = dict(hypergrad or {})
        unknown = set(hypergrad) - set(_HYPERGRAD_DEFAULTS)
        if unknown:
            raise ValueError(
                'BiLevelOptimWrapper: unknown hypergrad keys '
                f'{sorted(unknown)}; expected some of '
                f'{sorted(_HYPERGRAD_DEFAULTS)}')
        cfg = {**_HYPERGRAD_DEFAULTS, **hypergrad}
        self.method = cfg.pop('type')
        if self.method not in HYPERGRAD_METHODS:
            raise ValueError(
                f'BiLevelOptimWrapper: hypergrad type {self.method!r} is '
                f'unknown; expected one of {HYPERGRAD_METHODS}')
        self.lower_lr: Optional[float] = cfg.pop('lower_lr')
        if self.lower_lr is not None and lower_optimizer is not None:
            raise ValueError('BiLevelOptimWrapper: give the lower learning '
                             'rate either as hypergrad.lower_lr or in '
                             'lower_optimizer, not both')
        self.hypergrad_cfg = cfg
        self.lower_optimizer: Optional[Optimizer] = None
        self._shadows: Dict[Tensor, Tensor] = {}
        if lower_optimizer is not None:
            if self.method == 'itd_rmad':
                raise ValueError(
                    'BiLevelOptimWrapper: itd_rmad differentiates through '
                    'plain gradient-descent lower steps and cannot use '
                    'lower_optimizer')
            self._build_lower_optimizer(lower_optimizer)
        self.use_amp = use_amp
        self.amp_dtype = amp_dtype
        self._loss_scale: Optional[_DynamicLossScale] = None

    # ----------------------------------------------------------- set-up
    def _trained_params(self) -> List[Tensor]:
        return [
            p for group in self.optimizer.param_groups
            for p in group['params'] if p.requires_grad
        ]

    def _build_lower_optimizer(self, cfg: dict) -> None:
        # Shadows are persistent leaves the lower optimiser owns, so its
        # state (momentum) survives from one iteration to the next.
        groups = []
        for group in self.optimizer.param_groups:
            shadows = []
            for param in group['params']:
                if param.requires_grad:
                    self._shadows[param] = torch.zeros_like(
                        param, requires_grad=True)
                    shadows.append(self._shadows[param])
            groups.append(dict(params=shadows))
        self.lower_optimizer = OPTIMIZERS.build(dict(cfg, params=groups))

    def _gamma(self) -> float:
        if self.lower_optimizer is not None:
            return self.lower_optimizer.param_groups[0]['lr']
        if self.lower_lr is not None:
            return self.lower_lr
        return self.optimizer.param_groups[0]['lr']

    def _resolve_amp_dtype(self, device: torch.device) -> Optional[str]:
        """The autocast dtype on ``device`` (None without AMP); fp16 gets a
        dynamic loss scale."""
        if not self.use_amp:
            return None
        dtype = self.amp_dtype or ('float16'
                                   if device.type == 'cuda' else 'bfloat16')
        if dtype not in ('float16', 'bfloat16'):
            raise ValueError(f'BiLevelOptimWrapper: amp_dtype {dtype!r} is '
                             "not supported; expected 'float16' or "
                             "'bfloat16'")
        if dtype == 'float16' and self._loss_scale is None:
            self._loss_scale = _DynamicLossScale()
        return dtype

    # ------------------------------------------------------------- step
    def bilevel_step(self, model: BaseModel, data: dict) -> Dict[str, Tensor]:
        """One BOD-VCL iteration on ``model`` (unwrapped) with raw ``data``.

        Returns the log variables: the lower and upper loss dicts (e.g.
        ``loss_pred``, ``loss_static``, ``loss_dynamic``, mode counts),
        ``loss`` (= U), ``lower_grad_norm``, ``hypergrad_norm``,
        ``upper_grad_norm`` and the
        seconds of each phase ``time_lower``, ``time_upper``,
        ``time_hypergrad``.
        """
        data = model.data_preprocessor(data, True)
        names, params = self._named_trained_params(model)
        device = params[0].device
        logged: Dict[str, Dict[str, Tensor]] = {}
        amp_dtype = self._resolve_amp_dtype(device)

        def stateless(method: str, keep_buffers: bool):
            """``method`` as a function of parameter tensors. Without
            ``keep_buffers`` the forward writes (BatchNorm statistics,
            queues) go to throw-away copies of the buffers; the graph keeps
            referencing those copies, so the real buffers are never written
            behind autograd's back."""
            bound = _BoundLoss(model, method)
            buffers = dict(bound.named_buffers())

            def loss_fn(tensors) -> Tensor:
                substitutes = dict(zip(names, tensors))
                if not keep_buffers:
                    substitutes.update(
                        {k: b.clone() for k, b in buffers.items()})
                autocast = torch.autocast(
                    device_type=device.type, dtype=getattr(
                        torch, amp_dtype)) if amp_dtype else nullcontext()
                with autocast:
                    losses = functional_call(bound, substitutes, (data, ))
                loss, log_vars = model.parse_losses(losses)
                logged.setdefault(method, log_vars)
                return loss.float()

            return loss_fn

        loss_scale = self._loss_scale.scale if (
            amp_dtype == 'float16') else 1.0
        result = bilevel_hypergradient(
            params,
            stateless('loss_lower', keep_buffers=False),
            stateless('loss_upper', keep_buffers=True),
            method=self.method,
            lower_lr=self._gamma(),
            loss_scale=loss_scale,
            reduce_mean=_mean_across_ranks,
            lower_step=self._lower_step(params)
            if self.lower_optimizer is not None else None,
            side_effect_free=_same_random_numbers,
            sync=(torch.cuda.synchronize
                  if device.type == 'cuda' else lambda: None),
            **self.hypergrad_cfg)
        self._inner_count += 1
        finite = self._apply_hypergradient(params, result.hypergrad)
        log_vars = {
            key: value.detach()
            for key, value in logged['loss_lower'].items() if key != 'loss'
        }
        log_vars.update(
            {k: v.detach()
             for k, v in logged['loss_upper'].items()})
        log_vars['lower_grad_norm'] = result.lower_grad_norm.float()
        log_vars['hypergrad_norm'] = _norm(result.hypergrad)
        log_vars['upper_grad_norm'] = _norm(result.upper_grad)
        for phase, seconds in result.seconds.items():
            log_vars[f'time_{phase}'] = torch.tensor(seconds)
        if amp_dtype == 'float16':
            log_vars['loss_scale'] = torch.tensor(self._loss_scale.scale)
            log_vars['skipped_nonfinite'] = torch.tensor(float(not finite))
        return log_vars

    def _named_trained_params(
            self, model: nn.Module) -> Tuple[List[str], List[Tensor]]:
        trained = set(self._trained_params())
        names, params = [], []
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            if param not in trained:
                raise ValueError(
                    f'BiLevelOptimWrapper: parameter {name!r} requires grad '
                    'but is not in the optimiser; freeze it '
                    '(requires_grad=False) or let the optimiser own it')
            names.append(f'model.{name}')
            params.append(param)
        if not params:
            raise ValueError('BiLevelOptimWrapper: the model has no trainable '
                             'parameters')
        return names, params

    def _lower_step(self, params: List[Tensor]):
        """A lower step by ``lower_optimizer`` on the shadows of ``params``
        (in the order of ``params``)."""
        shadows = [self._shadows[p] for p in params]

        def step(theta: List[Tensor], grads: List[Tensor]) -> List[Tensor]:
            with torch.no_grad():
                for shadow, value, grad in zip(shadows, theta, grads):
                    shadow.copy_(value)
                    shadow.grad = grad.detach().clone()
            self.lower_optimizer.step()
            self.lower_optimizer.zero_grad(set_to_none=True)
            return [s.detach().clone() for s in shadows]

        return step

    def _apply_hypergradient(self, params: List[Tensor],
                             hypergrad: List[Tensor]) -> bool:
        finite = all(torch.isfinite(h).all() for h in hypergrad)
        if self.use_amp and self._loss_scale is not None:
            self._loss_scale.update(finite)
            if not finite:  # fp16 overflow: skip, the scale was halved
                print_log(
                    'BiLevelOptimWrapper: non-finite hypergradient under '
                    'fp16, skipping the step and halving the loss scale to '
                    f'{self._loss_scale.scale}',
                    logger='current',
                    level=logging.WARNING)
                return False
        elif not finite:
            raise FloatingPointError(
                f'BiLevelOptimWrapper: the {self.method} hypergradient has '
                'non-finite values (check the losses and learning rates); '
                'refusing to pass it to the optimiser')
        for param, grad in zip(params, hypergrad):
            grad = self.scale_loss(grad)  # 1 / accumulation factor
            if param.grad is None:
                param.grad = grad.clone()
            else:
                param.grad.add_(grad)
        if self.should_update():
            self.step()
            self.zero_grad()
        return True

    # ------------------------------------------------------------ state
    def state_dict(self) -> dict:
        state = super().state_dict()
        if self.lower_optimizer is not None:
            state['lower_optimizer'] = self.lower_optimizer.state_dict()
        if self._loss_scale is not None:
            state['loss_scale'] = self._loss_scale.state_dict()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        lower = state_dict.pop('lower_optimizer', None)
        scale = state_dict.pop('loss_scale', None)
        if self.lower_optimizer is not None:
            if lower is None:
                print_log(
                    'BiLevelOptimWrapper: the checkpoint has no '
                    'lower_optimizer state; the lower optimiser starts '
                    'fresh', logger='current', level=logging.WARNING)
            else:
                self.lower_optimizer.load_state_dict(lower)
        if scale is not None:
            self._loss_scale = self._loss_scale or _DynamicLossScale()
            self._loss_scale.load_state_dict(scale)
        super().load_state_dict(state_dict)


def _norm(tensors: List[Tensor]) -> Tensor:
    return torch.sqrt(sum((t.float()**2).sum() for t in tensors)).detach()


@contextmanager
def _same_random_numbers() -> Iterator[None]:
    """Replay the same random numbers for every lower-loss evaluation, so
    the finite-difference pair (and every Hessian-vector product) sees the
    same dropout masks."""
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available(
    ) else None
    try:
        yield
    finally:
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
