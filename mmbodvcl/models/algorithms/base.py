"""Common skeleton of the video contrastive algorithms (V-CL and BOD-VCL)."""
import copy
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmaction.registry import MODELS
from mmengine.model import BaseModel, ModuleDict
from mmengine.optim import OptimWrapper
from torch import Tensor, nn

from mmbodvcl.engine.optim_wrappers import BiLevelOptimWrapper
from mmbodvcl.functional.strict_temporal import temporally_local
from .stateless import StatelessLoss, trainable_parameters

#: Embedding parts scored by the contrastive heads.
UNIFIED_PARTS = ('unified', )
DECOUPLED_PARTS = ('static', 'dynamic')


class BaseVCL(BaseModel):
    """Base of V-SimCLR, V-MoCo, V-BYOL and V-SwAV, as plain V-CL or
    BOD-VCL.

    The online encoder is ``backbone`` (any MMAction2 backbone that keeps
    time, ``(N, C, T, h, w)``) followed by ``neck`` (``KoopmanNeck``:
    per-frame projection ``(N, M, T)``, prediction loss and static/dynamic
    split). Checkpoints keep it under ``backbone.*`` and ``neck.*``.

    * ``decouple=False`` (plain V-CL): one head scores the unified
      embedding ``Z = mean_t z_t`` of each view; loss ``loss_unified``.
    * ``decouple=True`` (BOD-VCL): the neck splits each view into
      ``Z_A`` (static) and ``Z_M`` (dynamic), each scored by its own head
      (own queue / predictor / prototypes); losses ``loss_static`` and
      ``loss_dynamic``. ``num_static_modes`` / ``num_dynamic_modes`` (mean
      per clip) are logged.

    The two levels of BOD-VCL are :meth:`loss_lower` (L_pred) and
    :meth:`loss_upper` (L_A + L_M, or the unified L); ``BiLevelOptimWrapper``
    drives them (:meth:`train_step`). With a plain ``OptimWrapper``
    :meth:`loss` is minimised: the contrastive loss, plus ``loss_pred`` when
    ``with_pred_loss`` (the "+ L_pred" ablation when ``decouple=False``,
    the single-level ablation when ``decouple=True``).

    Args:
        backbone: Config of the backbone.
        neck: Config of the ``KoopmanNeck``.
        head: Config of the head, built once per part.
        decouple: Score Z_A and Z_M separately (BOD-VCL).
        with_pred_loss: Add L_pred to :meth:`loss`.
        strict_lower: Run the backbone of :meth:`loss_lower` temporally
            local (centre temporal slice of 3D kernels, temporal pooling
            stride 1; the paper's Table 10 "strict" ablation).
        data_preprocessor: Config of the multi-view data preprocessor.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 decouple: bool = False,
                 with_pred_loss: bool = False,
                 strict_lower: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.neck = MODELS.build(neck)
        self.decouple = decouple
        self.with_pred_loss = with_pred_loss
        self.strict_lower = strict_lower
        self.parts = DECOUPLED_PARTS if decouple else UNIFIED_PARTS
        # MMEngine's ModuleDict runs the heads' init_weights (init_cfg).
        self.heads = ModuleDict(
            {part: MODELS.build(copy.deepcopy(head))
             for part in self.parts})

    # ------------------------------------------------------------------
    # encoders
    @staticmethod
    def _check_views(inputs: Sequence[Tensor]) -> None:
        if isinstance(inputs, Tensor) or not isinstance(
                inputs, (list, tuple)):
            raise TypeError(
                f'inputs must be a list of views, each (N, C, T, H, W), as '
                f'the multi-view data preprocessor returns; got '
                f'{type(inputs).__name__}')
        if len(inputs) < 2:
            raise ValueError(f'contrastive learning needs >= 2 views per '
                             f'video, got {len(inputs)}')
        shapes = {tuple(view.shape) for view in inputs}
        if len(shapes) != 1 or len(inputs[0].shape) != 5:
            raise ValueError(f'all views must share one (N, C, T, H, W) '
                             f'shape, got {sorted(shapes)}')

    @staticmethod
    def encode(backbone: nn.Module, neck: nn.Module,
               clips: Tensor) -> Tensor:
        """``clips (B, C, T_in, H, W)`` -> per-frame embeddings
        ``(B, M, T)``."""
        return neck(backbone(clips))

    def online_embeddings(self, inputs: Sequence[Tensor]) -> Tensor:
        """Per-frame embeddings of all views in one backbone pass (BatchNorm
        sees every view): ``V x (N, C, T_in, H, W)`` -> ``(V, N, M, T)``."""
        self._check_views(inputs)
        z = self.encode(self.backbone, self.neck, torch.cat(inputs))
        return z.reshape(len(inputs), inputs[0].shape[0], *z.shape[1:])

    def parts_of(self, neck: nn.Module,
                 z: Tensor) -> Tuple[Dict[str, Tensor], Dict[str, Tensor]]:
        """Embeddings of each part and the split's statistics.

        Args:
            neck: The neck whose split to use (online or momentum).
            z: ``(V, N, M, T)``.

        Returns:
            ``({part: (V, N, M)}, {'num_static_modes': ..., ...})``; no
            statistics for the unified embedding.
        """
        num_views, batch_size = z.shape[:2]
        if not self.decouple:
            return {'unified': z.mean(dim=-1)}, {}
        split = neck.split(z.flatten(0, 1))
        parts = {
            'static': split.static.reshape(num_views, batch_size, -1),
            'dynamic': split.dynamic.reshape(num_views, batch_size, -1)
        }
        stats = {
            'num_static_modes': split.num_static.float().mean(),
            'num_dynamic_modes': (~split.static_mask).sum(-1).float().mean()
        }
        return parts, stats

    # ------------------------------------------------------------------
    # objectives
    def contrastive_loss(self, parts: Dict[str, Tensor],
                         inputs: List[Tensor]) -> Dict[str, Tensor]:
        """Loss of each part, ``{f'loss_{part}': scalar}``; by default each
        part's head scores the online embeddings alone.

        Args:
            parts: ``{part: (V, N, M)}`` online embeddings.
            inputs: The views, for algorithms with a momentum encoder.
        """
        return {
            f'loss_{part}': self.heads[part].loss(embeddings)
            for part, embeddings in parts.items()
        }

    def _upper(self, inputs: List[Tensor],
               z: Tensor) -> Dict[str, Tensor]:
        parts, stats = self.parts_of(self.neck, z)
        losses = self.contrastive_loss(parts, inputs)
        losses.update(stats)
        return losses

    def loss(self, inputs: List[Tensor],
             data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Single-level objective: the contrastive loss(es), plus
        ``loss_pred`` when ``with_pred_loss``.

        Args:
            inputs: V views ``(N, C, T_in, H, W)``.
            data_samples: Unused (self-supervised).
        """
        z = self.online_embeddings(inputs)
        losses = self._upper(inputs, z)
        if self.with_pred_loss:
            losses.update(self.neck.prediction_loss(list(z)))
        return losses

    def loss_lower(self, inputs: List[Tensor],
                   data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Lower level of BOD-VCL: L_pred only (``loss_pred``)."""
        context = (
            temporally_local(self.backbone)
            if self.strict_lower else nullcontext())
        with context:
            z = self.online_embeddings(inputs)
        return self.neck.prediction_loss(list(z))

    def loss_upper(self, inputs: List[Tensor],
                   data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Upper level: ``loss_static + loss_dynamic`` (BOD-VCL) or the
        unified loss. Called once per iteration (MoCo enqueues here)."""
        return self._upper(inputs, self.online_embeddings(inputs))

    # ------------------------------------------------------------------
    # training loop
    @property
    def has_lower_loss(self) -> bool:
        """Whether :meth:`loss_lower` is a lower level that
        ``BiLevelOptimWrapper`` can optimise."""
        return self.decouple

    def after_optim_step(self) -> None:
        """Post-step updates; ``AfterOptimStepHook`` calls it after every
        iteration in which the optimiser stepped."""
        self._steps_without_post_update = 0
        for head in self.heads.values():
            if hasattr(head, 'after_optim_step'):
                head.after_optim_step()

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        """One iteration. With a ``BiLevelOptimWrapper``: the trainable
        parameters and :meth:`loss_lower` / :meth:`loss_upper` as functions
        of them (lower forwards write throw-away buffer copies) go to
        ``optim_wrapper.update_params_bilevel``; otherwise MMEngine's
        single-level step on :meth:`loss`. The post-step updates
        (:meth:`after_optim_step`) run in ``AfterOptimStepHook``."""
        if isinstance(optim_wrapper, BiLevelOptimWrapper):
            if not self.has_lower_loss:
                raise ValueError(
                    f'{type(self).__name__} with decouple=False has no lower '
                    'level for BiLevelOptimWrapper; use decouple=True or a '
                    'single-level OptimWrapper')
            data = self.data_preprocessor(data, True)
            params = trainable_parameters(self)
            names = [name for name, _ in params]
            log_vars = optim_wrapper.update_params_bilevel(
                params,
                StatelessLoss(self, self.loss_lower, data, names, False),
                StatelessLoss(self, self.loss_upper, data, names, True))
        else:
            log_vars = super().train_step(data, optim_wrapper)
        self._check_post_step_updates(optim_wrapper.should_update())
        return log_vars

    def _check_post_step_updates(self, stepped: bool, limit: int = 10) -> None:
        """Refuse to train on with a frozen momentum encoder / unnormalised
        prototypes: ``limit`` optimiser steps in a row without
        :meth:`after_optim_step` mean its hook is missing. (A fresh or
        resumed model starts counting from 0.)"""
        if not stepped:
            return
        count = getattr(self, '_steps_without_post_update', 0) + 1
        self._steps_without_post_update = count
        has_updates = type(self).after_optim_step is not \
            BaseVCL.after_optim_step or any(
                hasattr(head, 'after_optim_step')
                for head in self.heads.values())
        if count > limit and has_updates:
            raise RuntimeError(
                f'{type(self).__name__}: {count} optimiser steps without '
                'after_optim_step(), so its momentum encoder / prototypes '
                'are not being updated; add '
                "custom_hooks=[dict(type='AfterOptimStepHook')] to the "
                'config (configs/_base_/default_runtime.py has it)')

    def extract_feat(
            self, inputs: Union[Tensor, Sequence[Tensor]]
    ) -> Union[Tensor, List[Tensor]]:
        """Backbone features of a clip batch ``(N, C, T_in, H, W)``, or of
        each view of a list."""
        if isinstance(inputs, Tensor):
            return self.backbone(inputs)
        return [self.backbone(view) for view in inputs]

    def forward(self,
                inputs: Union[Tensor, List[Tensor]],
                data_samples: Optional[list] = None,
                mode: str = 'tensor'):
        """``mode='loss'``: :meth:`loss`; ``'tensor'``: backbone features
        (:meth:`extract_feat`); ``'predict'`` is not supported."""
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'tensor':
            return self.extract_feat(inputs)
        if mode == 'predict':
            raise NotImplementedError(
                f'{type(self).__name__} is a self-supervised pretraining '
                f'model and has no predictions; evaluate its backbone '
                f'through a downstream config (configs/downstream/) that '
                f'loads the checkpoint (load_from=...).')
        raise RuntimeError(f'Invalid mode "{mode}"; use "loss", "tensor" '
                           f'or "predict"')
