"""``BiLevelOptimWrapper``: the BOD-VCL bi-level step inside MMEngine.

The model owns the training step (MMEngine's way): its ``train_step`` hands
the wrapper its trainable parameters and its two losses as functions of
those tensors (:meth:`BiLevelOptimWrapper.update_params_bilevel`). The
wrapper computes the hypergradient with the configured method
(:mod:`mmbodvcl.functional.hypergrad`, built through
:mod:`mmbodvcl.engine.hypergradients`) under autocast when asked, averages
every gradient across ranks, replays the same random numbers for every
lower-loss evaluation, and hands the hypergradient to the optimiser through
the normal :meth:`OptimWrapper.update_params` path (accumulation, clipping,
counters and schedulers are MMEngine's own).
"""
import logging
from contextlib import contextmanager, nullcontext
from typing import (Callable, Dict, Iterator, List, Optional, Sequence,
                    Tuple)

import torch
import torch.distributed as torch_dist
from mmengine.dist import get_world_size
from mmengine.logging import print_log
from mmengine.optim import OptimWrapper
# MMEngine's root registries: visible from mmaction's children (parent
# lookup) and from any other default scope.
from mmengine.registry import OPTIM_WRAPPERS, OPTIMIZERS
from torch import Tensor
from torch.optim import Optimizer

from mmbodvcl.functional.hypergrad import (BilevelProblem, HypergradResult,
                                           Hypergradient)
from mmbodvcl.functional.hypergrad.base import norm
from ..hypergradients import build_hypergradient

#: A loss as a function of the parameter tensors -> ``(loss, log_vars)``.
LossAndLogsFn = Callable[[Sequence[Tensor]], Tuple[Tensor, Dict[str,
                                                                Tensor]]]


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

    Per iteration (:meth:`update_params_bilevel`): ``k`` lower gradient
    steps on ``L_pred`` from ``theta`` to ``theta*`` (stateless, ``theta``
    is never modified), ``U = L_A + L_M`` at ``theta*``, the hypergradient
    by the configured method, then one step of ``optimizer`` on ``theta``
    along the hypergradient through :meth:`OptimWrapper.update_params` (the
    usual accumulation, clipping and counters).

    Build it with ``constructor='BiLevelOptimWrapperConstructor'``, which
    checks the model and its DDP wrapper at build time.

    Args:
        optimizer: the upper-level optimiser (SGD, LARS, ...).
        hypergrad: ``dict(type=<method>, **arguments)``; methods and their
            arguments (with defaults) in ``HYPERGRADIENTS``: ``itd_fd``
            (default), ``aid_fd``, ``itd_rmad``, ``aid_nmn``, ``aid_cg``,
            ``first_order``. Every method takes ``inner_steps`` (k, 1) and
            ``lower_lr`` (gamma; None: the current learning rate of the
            optimiser's first parameter group, so it follows the param
            schedulers).
        lower_optimizer: optional optimiser config for the lower steps (e.g.
            ``dict(type='SGD', lr=0.05, momentum=0.9)``). It acts on a
            persistent copy of the parameters, its state is saved in
            :meth:`state_dict`, and its first group's lr is the gamma of the
            hypergradient. Not with the unrolled methods (``itd_*``).
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
        self.hypergrad: Hypergradient = build_hypergradient(hypergrad)
        if self.hypergrad.lower_lr is not None and lower_optimizer is not None:
            raise ValueError('BiLevelOptimWrapper: give the lower learning '
                             'rate either as hypergrad.lower_lr or in '
                             'lower_optimizer, not both')
        self.lower_optimizer: Optional[Optimizer] = None
        self._shadows: Dict[Tensor, Tensor] = {}
        if lower_optimizer is not None:
            if self.hypergrad.unrolled:
                raise ValueError(
                    f'BiLevelOptimWrapper: {self.hypergrad!r} differentiates '
                    'through plain gradient-descent lower steps and cannot '
                    "use lower_optimizer; pick hypergrad type 'aid_fd'")
            self._build_lower_optimizer(lower_optimizer)
        self.use_amp = use_amp
        self.amp_dtype = amp_dtype
        self._loss_scale: Optional[_DynamicLossScale] = None
        self._skip_next_step = False

    # ----------------------------------------------------------- set-up
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
        if self.hypergrad.lower_lr is not None:
            return self.hypergrad.lower_lr
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
    def update_params(self, loss: Tensor, *args, **kwargs) -> None:
        """Refused: the bi-level step needs both losses as functions of the
        parameters, not one loss tensor."""
        raise RuntimeError(
            'BiLevelOptimWrapper.update_params(loss) was called with a '
            'single loss, but the bi-level step needs the model to call '
            'update_params_bilevel(named_params, lower_loss, upper_loss) '
            "from its train_step. Under DDP, MMEngine's "
            'MMDistributedDataParallel computes the loss itself and calls '
            'update_params: set model_wrapper_cfg=dict(type='
            "'ReducerFreeDataParallel') in the config.")

    def update_params_bilevel(self, named_params: Sequence[Tuple[str,
                                                                 Tensor]],
                              lower_loss: LossAndLogsFn,
                              upper_loss: LossAndLogsFn) -> Dict[str, Tensor]:
        """One BOD-VCL iteration.

        Args:
            named_params: ``(name, parameter)`` of every trainable parameter
                ``theta`` of the model (all must be in the optimiser).
            lower_loss: ``L_pred`` as a function of tensors standing in for
                the parameters (same order) -> ``(loss, log_vars)``; it must
                not write the model's buffers.
            upper_loss: ``U`` likewise; called once per iteration, may write
                buffers (BatchNorm statistics, queues).

        Returns:
            The log variables: the lower and upper ``log_vars`` (``loss`` is
            ``U``), ``lower_grad_norm``, ``hypergrad_norm``,
            ``upper_grad_norm``, the seconds of each phase
            (``time_lower``, ``time_upper``, ``time_hypergrad``), the
            method's diagnostics (``hypergrad_<name>``) and under fp16
            ``loss_scale`` and ``skipped_nonfinite``.
        """
        params = self._checked_params(named_params)
        device = params[0].device
        amp_dtype = self._resolve_amp_dtype(device)
        logged: Dict[str, Dict[str, Tensor]] = {}
        problem = BilevelProblem(
            lower_loss=_logging_scalar(lower_loss, 'lower', logged, device,
                                       amp_dtype),
            upper_loss=_logging_scalar(upper_loss, 'upper', logged, device,
                                       amp_dtype),
            lower_lr=self._gamma(),
            loss_scale=self._loss_scale.scale
            if amp_dtype == 'float16' else 1.0,
            reduce_mean=_mean_across_ranks,
            lower_step=self._lower_step(params)
            if self.lower_optimizer is not None else None,
            side_effect_free=_ReplayRandomNumbers(device),
            sync=torch.cuda.synchronize
            if device.type == 'cuda' else _no_sync)
        result = self.hypergrad(params, problem)
        hypergrad_norm = norm(result.hypergrad)
        finite = bool(torch.isfinite(hypergrad_norm))
        self._apply_hypergradient(params, result.hypergrad, finite)
        log_vars = self._log_vars(logged, result, amp_dtype)
        log_vars['hypergrad_norm'] = hypergrad_norm.float()
        if amp_dtype == 'float16':
            log_vars['skipped_nonfinite'] = torch.tensor(float(not finite))
        return log_vars

    def _checked_params(
            self, named_params: Sequence[Tuple[str, Tensor]]) -> List[Tensor]:
        trained = {
            id(p)
            for group in self.optimizer.param_groups for p in group['params']
        }
        for name, param in named_params:
            if id(param) not in trained:
                raise ValueError(
                    f'BiLevelOptimWrapper: parameter {name!r} requires grad '
                    'but is not in the optimiser; freeze it '
                    '(requires_grad=False) or let the optimiser own it')
        if not named_params:
            raise ValueError('BiLevelOptimWrapper: the model has no trainable '
                             'parameters')
        return [param for _, param in named_params]

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
                             hypergrad: List[Tensor], finite: bool) -> None:
        """Step along ``hypergrad`` through ``OptimWrapper.update_params``:
        the gradient of ``sum <theta, hypergrad>`` is the hypergradient."""
        if self._loss_scale is not None and self.use_amp:
            self._loss_scale.update(finite)
            if not finite:  # fp16 overflow: skip the step, halve the scale
                print_log(
                    'BiLevelOptimWrapper: non-finite hypergradient under '
                    'fp16, skipping the step and halving the loss scale to '
                    f'{self._loss_scale.scale}',
                    logger='current',
                    level=logging.WARNING)
                self._skip_next_step = True
                hypergrad = [torch.zeros_like(h) for h in hypergrad]
        elif not finite:
            raise FloatingPointError(
                f'BiLevelOptimWrapper: the {self.hypergrad!r} hypergradient '
                'has non-finite values (check the losses and learning '
                'rates); refusing to pass it to the optimiser')
        surrogate = torch.stack([
            torch.vdot(p.reshape(-1), h.reshape(-1).to(p.dtype))
            for p, h in zip(params, hypergrad)
        ]).sum()
        OptimWrapper.update_params(self, surrogate)

    def step(self, **kwargs) -> None:
        """``OptimWrapper.step``, skipped (with the gradients accumulated
        since the last step) after an fp16 overflow."""
        if self._skip_next_step:
            self._skip_next_step = False
            return
        super().step(**kwargs)

    def _log_vars(self, logged: Dict[str, Dict[str, Tensor]],
                  result: HypergradResult,
                  amp_dtype: Optional[str]) -> Dict[str, Tensor]:
        log_vars = {
            key: value.detach()
            for key, value in logged['lower'].items() if key != 'loss'
        }
        log_vars.update({k: v.detach() for k, v in logged['upper'].items()})
        log_vars['lower_grad_norm'] = result.lower_grad_norm.float()
        log_vars['upper_grad_norm'] = norm(result.upper_grad).float()
        for phase, seconds in result.seconds.items():
            log_vars[f'time_{phase}'] = torch.tensor(seconds)
        for key, value in result.stats.items():
            log_vars[f'hypergrad_{key}'] = torch.tensor(value)
        if amp_dtype == 'float16':
            log_vars['loss_scale'] = torch.tensor(self._loss_scale.scale)
        return log_vars

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


def _no_sync() -> None:
    return None


def _logging_scalar(loss_fn: LossAndLogsFn, level: str,
                    logged: Dict[str, Dict[str, Tensor]],
                    device: torch.device,
                    amp_dtype: Optional[str]) -> Callable[[Sequence[Tensor]],
                                                          Tensor]:
    """``loss_fn`` -> its fp32 loss, under autocast when ``amp_dtype``;
    keeps the ``log_vars`` of its first call in ``logged[level]``."""

    def loss(tensors: Sequence[Tensor]) -> Tensor:
        autocast = torch.autocast(
            device_type=device.type, dtype=getattr(
                torch, amp_dtype)) if amp_dtype else nullcontext()
        with autocast:
            value, log_vars = loss_fn(tensors)
        logged.setdefault(level, log_vars)
        return value.float()

    return loss


class _ReplayRandomNumbers:
    """Context entered around every lower-loss evaluation of one iteration:
    each starts from the random state the first one started from (so the
    finite differences, and every Hessian-vector product, see the same
    dropout masks) and leaves the outer random stream as it found it."""

    def __init__(self, device: torch.device) -> None:
        self.cuda = device if device.type == 'cuda' else None
        self.replayed: Optional[Tuple[Tensor, Optional[Tensor]]] = None

    def _state(self) -> Tuple[Tensor, Optional[Tensor]]:
        return (torch.get_rng_state(),
                torch.cuda.get_rng_state(self.cuda) if self.cuda else None)

    def _set(self, state: Tuple[Tensor, Optional[Tensor]]) -> None:
        torch.set_rng_state(state[0])
        if self.cuda:
            torch.cuda.set_rng_state(state[1], self.cuda)

    @contextmanager
    def __call__(self) -> Iterator[None]:
        outer = self._state()
        if self.replayed is None:
            self.replayed = outer
        else:
            self._set(self.replayed)
        try:
            yield
        finally:
            self._set(outer)
