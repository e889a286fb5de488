"""Bases of the pretraining algorithms: ``BaseVideoSSL`` (what every
algorithm of the plugin shares: backbone, decoupler, the single- or bi-level
training step, post-step updates, forward modes) and ``BaseVCL`` (the video
contrastive algorithms, V-CL and BOD-VCL: neck, one head per part)."""
import copy
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmaction.registry import MODELS
from mmengine.model import BaseModel, ModuleDict
from mmengine.optim import OptimWrapper
from torch import Tensor

from mmbodvcl.functional.sub_batch import check_lower_batch, sub_batch_indices
from ..decouplers import Decoupled, Encoder
from ..utils import temporally_local
from .legacy import upgrade_legacy_config
from .stateless import StatelessLoss, trainable_parameters


class BaseVideoSSL(BaseModel):
    """What every pretraining algorithm of the plugin shares.

    A ``backbone`` (any MMAction2 backbone; state-dict keys ``backbone.*``, so
    stock recognisers load it) and a ``decoupler`` (docs/architecture.md).
    Subclasses implement :meth:`loss` (the single-level objective) and, when
    their decoupler has a lower-level loss, :meth:`loss_lower` and
    :meth:`loss_upper` (the two levels of bi-level training); they override
    :meth:`after_optim_step` and :attr:`needs_post_step_updates` when they
    have state to update after every optimiser step (momentum encoders,
    prototypes).

    Args:
        backbone: Config of the backbone.
        decoupler: Config of the decoupler.
        data_preprocessor: Config of the multi-view data preprocessor.
        init_cfg: Initialisation config.
    """
    #: Fewer views are refused by :meth:`_check_views`.
    min_views = 2
    #: Clips of each batch the lower level sees (:meth:`lower_sub_batch`).
    lower_batch: Optional[Union[float, int]] = None
    lower_batch_seed = 0

    def __init__(self,
                 backbone: dict,
                 decoupler: dict,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.decoupler = MODELS.build(decoupler)

    @property
    def has_lower_loss(self) -> bool:
        """Whether bi-level training is possible (the decoupler defines a
        lower-level loss)."""
        return self.decoupler.has_lower_loss

    @property
    def needs_post_step_updates(self) -> bool:
        """Whether :meth:`after_optim_step` changes state (then forgetting
        ``AfterOptimStepHook`` is refused)."""
        return False

    def _check_views(self, inputs: Sequence[Tensor]) -> None:
        if isinstance(inputs, Tensor) or not isinstance(
                inputs, (list, tuple)):
            raise TypeError(
                f'inputs must be a list of views, each (N, C, T, H, W), as '
                f'the multi-view data preprocessor returns; got '
                f'{type(inputs).__name__}')
        if len(inputs) < self.min_views:
            raise ValueError(f'{type(self).__name__} needs >= '
                             f'{self.min_views} views per video, got '
                             f'{len(inputs)}')
        shapes = {tuple(view.shape) for view in inputs}
        if len(shapes) != 1 or len(inputs[0].shape) != 5:
            raise ValueError(f'all views must share one (N, C, T, H, W) '
                             f'shape, got {sorted(shapes)}')

    # ------------------------------------------------------------------
    # objectives
    def loss(self, inputs: List[Tensor],
             data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """The single-level objective (``loss_*`` entries and logged
        statistics)."""
        raise NotImplementedError

    def loss_lower(self, inputs: List[Tensor],
                   data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """The lower level of bi-level training."""
        raise NotImplementedError(
            f'{type(self).__name__} has no lower level (its decoupler '
            f'{type(self.decoupler).__name__} has no lower-level loss)')

    def loss_upper(self, inputs: List[Tensor],
                   data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """The upper level of bi-level training."""
        return self.loss(inputs, data_samples)

    # ------------------------------------------------------------------
    # training loop
    def after_optim_step(self) -> None:
        """Post-step updates; ``AfterOptimStepHook`` calls it after every
        iteration in which the optimiser stepped."""
        self._steps_without_post_update = 0

    def train_step(self, data: Union[dict, tuple, list],
                   optim_wrapper: OptimWrapper) -> Dict[str, Tensor]:
        """One iteration. With an optimiser wrapper that has
        ``update_params_bilevel`` (``BiLevelOptimWrapper``; the method is
        the whole interface between the two): the trainable parameters and
        :meth:`loss_lower` / :meth:`loss_upper` as functions of them (lower
        forwards write throw-away buffer copies) go to it; otherwise
        MMEngine's single-level step on :meth:`loss`. A model without a
        lower level is refused when the wrapper is built
        (``BiLevelOptimWrapperConstructor``) or, built without it, by
        :meth:`loss_lower`. The post-step updates (:meth:`after_optim_step`)
        run in ``AfterOptimStepHook``."""
        update_params_bilevel = getattr(optim_wrapper,
                                        'update_params_bilevel', None)
        if update_params_bilevel is None:
            return super().train_step(data, optim_wrapper)
        data = self.data_preprocessor(data, True)
        params = trainable_parameters(self)
        names = [name for name, _ in params]
        # The iteration (MMEngine's counter) only matters for a sub-batch.
        lower_data = data if self.lower_batch is None else \
            self.lower_sub_batch(data, optim_wrapper.inner_count)
        log_vars = update_params_bilevel(
            params,
            StatelessLoss(self, self.loss_lower, lower_data, names, False),
            StatelessLoss(self, self.loss_upper, data, names, True))
        inputs = lower_data['inputs']
        log_vars['lower_batch_size'] = torch.tensor(float(len(
            inputs if isinstance(inputs, Tensor) else inputs[0])))
        return log_vars

    def lower_sub_batch(self, data: dict, iteration: int) -> dict:
        """The clips of the preprocessed ``data`` (``inputs``: a list of
        views ``(N, ...)`` or one ``(N, ...)`` tensor) that the lower level
        sees at ``iteration``: ``lower_batch`` of them, all when None. The
        iteration is the optim wrapper's ``inner_count``: MMEngine sets it
        to the loop's iteration at the start of training and on resume, it
        is the same on every rank, and it exists without a Runner."""
        if self.lower_batch is None:
            return data
        inputs = data['inputs']
        index = sub_batch_indices(
            len(inputs if isinstance(inputs, Tensor) else inputs[0]),
            self.lower_batch, seed=self.lower_batch_seed,
            iteration=iteration,
            min_clips=self.decoupler.min_lower_clips,
            name=f'{type(self).__name__}: lower_batch')
        samples = data.get('data_samples')
        return dict(
            data,
            inputs=inputs[index.to(inputs.device)] if isinstance(
                inputs, Tensor) else [view[index.to(view.device)]
                                      for view in inputs],
            data_samples=None if samples is None else
            [samples[i] for i in index.tolist()])

    def _check_post_step_updates(self, limit: int = 100) -> None:
        """Refuse to train on with a frozen momentum encoder / unnormalised
        prototypes: ``limit`` training-mode objectives in a row without
        :meth:`after_optim_step` mean its hook is missing. Called by the
        objectives, because MMEngine's DDP wrapper never calls
        :meth:`train_step`; ``limit`` leaves room for gradient
        accumulation. (A fresh or resumed model starts counting from 0.)"""
        if not (self.training and self.needs_post_step_updates):
            return
        count = getattr(self, '_steps_without_post_update', 0) + 1
        self._steps_without_post_update = count
        if count > limit:
            raise RuntimeError(
                f'{type(self).__name__}: {count} training steps without '
                'after_optim_step(), so its momentum encoder / prototypes '
                'are not being updated; add dict(type=\'AfterOptimStepHook\') '
                'to default_hooks or custom_hooks (as '
                'configs/_base_/default_runtime.py does)')

    # ------------------------------------------------------------------
    # evaluation
    def extract_feat(
            self, inputs: Union[Tensor, Sequence[Tensor]]
    ) -> Union[Tensor, List[Tensor]]:
        """Backbone features of a clip batch ``(N, C, T_in, H, W)``, or of
        each view of a list."""
        if isinstance(inputs, Tensor):
            return self.backbone(inputs)
        return [self.backbone(view) for view in inputs]

    def probe_embeddings(self, clips: Tensor) -> Dict[str, Tensor]:
        """Evaluation embeddings of preprocessed clips ``(N, C, T_in, H,
        W)`` for linear probes, ``{name: (N, D)}``; computed in eval mode
        without gradients (the training mode is restored):

        * ``backbone``: the last feature map averaged over time and space
          (what a downstream model starts from);
        * ``unified``: the unified embedding, where the model has one;
        * ``static`` / ``dynamic``: the static and the dynamic part, where
          the model has them.

        Subclasses add their embeddings in :meth:`_probe_parts`.
        """
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                features = self.extract_feat(clips)
                if isinstance(features, (list, tuple)):
                    features = features[-1]
                embeddings = dict(backbone=features.flatten(2).mean(-1))
                embeddings.update(self._probe_parts(clips, features))
        finally:
            self.train(was_training)
        return embeddings

    def _probe_parts(self, clips: Tensor,
                     features: Tensor) -> Dict[str, Tensor]:
        """The embeddings of :meth:`probe_embeddings` beyond ``backbone``,
        given the clips and their backbone features."""
        return {}

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


class BaseVCL(BaseVideoSSL):
    """Base of V-SimCLR, V-MoCo, V-BYOL and V-SwAV, plain or decoupled.

    The online encoder is ``backbone`` (any MMAction2 backbone that keeps
    time, ``(N, C, T, h, w)``) followed by ``neck`` (a projection to
    per-frame embeddings ``(N, M, T)``, e.g. ``PerFrameProjectionNeck``).
    The ``decoupler`` turns the views into the embeddings that are
    contrasted, one head per part (state-dict keys ``backbone.*``,
    ``neck.*``, ``heads.<part>.*``):

    * none (``UnifiedEmbedding``, plain V-CL): part ``unified``, the
      temporal mean ``Z``; loss ``loss_unified``;
    * ``KoopmanDecoupler`` (BOD-VCL): parts ``static`` (Z_A) and ``dynamic``
      (Z_M) of the Koopman split, losses ``loss_static`` and
      ``loss_dynamic``; its lower-level loss is L_pred;
    * ``DerivedInputDecoupler``: parts from a static frame and from frame
      differences.

    The decoupler's statistics (e.g. ``num_static_modes``) are logged. The
    two levels of bi-level training are :meth:`loss_lower` (the decoupler's
    lower-level loss) and :meth:`loss_upper` (the contrastive losses); with
    a plain ``OptimWrapper`` :meth:`loss` is minimised: the contrastive
    losses, plus the lower-level loss when ``with_lower_loss`` (the "+
    L_pred" and single-level ablations).

    Args:
        backbone: Config of the backbone.
        neck: Config of the neck.
        head: Config of the head, built once per part.
        decoupler: Config of the decoupler; None: ``UnifiedEmbedding``.
        with_lower_loss: Add the decoupler's lower-level loss to
            :meth:`loss`.
        strict_lower: Run the backbone of :meth:`loss_lower` temporally
            local (centre temporal slice of 3D kernels, temporal pooling
            stride 1; the paper's Table 10 "strict" ablation).
        data_preprocessor: Config of the multi-view data preprocessor.
        init_cfg: Initialisation config.
        lower_batch: Bi-level training only: the lower level (its steps
            and the hypergradient's finite differences, for every method)
            sees this fraction (float in (0, 1]) or number (int) of each
            rank's clips, the upper level all of them; None: all.
            Which clips: :mod:`mmbodvcl.functional.sub_batch`; logged as
            ``lower_batch_size``.
        lower_batch_seed: Seed of that choice (with the iteration).
        **legacy: ``decouple`` / ``with_pred_loss`` of configs written
            before the decoupler existed (see :mod:`.legacy`).
    """

    def __init__(self,
                 backbone: dict,
                 neck: dict,
                 head: dict,
                 decoupler: Optional[dict] = None,
                 with_lower_loss: bool = False,
                 strict_lower: bool = False,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None,
                 lower_batch: Optional[Union[float, int]] = None,
                 lower_batch_seed: int = 0,
                 **legacy) -> None:
        neck, decoupler, with_lower_loss = upgrade_legacy_config(
            neck, decoupler, with_lower_loss, legacy)
        super().__init__(
            backbone,
            decoupler or dict(type='UnifiedEmbedding'),
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        self.neck = MODELS.build(neck)
        needs_lower = {'with_lower_loss': with_lower_loss,
                       'strict_lower': strict_lower,
                       'lower_batch': lower_batch}
        for name, value in needs_lower.items():
            if value not in (None, False) and \
                    not self.decoupler.has_lower_loss:
                raise ValueError(
                    f'{type(self).__name__}: {name}={value!r} needs a '
                    'decoupler '
                    f'with a lower-level loss, but '
                    f'{type(self.decoupler).__name__} has none')
        self.with_lower_loss = with_lower_loss
        self.strict_lower = strict_lower
        if lower_batch is not None:
            check_lower_batch(lower_batch,
                              f'{type(self).__name__}: lower_batch')
        self.lower_batch = lower_batch
        self.lower_batch_seed = lower_batch_seed
        # MMEngine's ModuleDict runs the heads' init_weights (init_cfg).
        self.heads = ModuleDict(
            {part: MODELS.build(copy.deepcopy(head))
             for part in self.decoupler.parts})

    @property
    def needs_post_step_updates(self) -> bool:
        return any(
            hasattr(head, 'after_optim_step') for head in self.heads.values())

    # ------------------------------------------------------------------
    # encoders
    def encode(self, clips: Tensor) -> Tensor:
        """Online encoder: ``clips (B, C, T_in, H, W)`` -> per-frame
        embeddings ``(B, M, T)``."""
        return self.neck(self.backbone(clips))

    def decouple_views(self,
                       inputs: List[Tensor],
                       encoder: Optional[Encoder] = None,
                       with_lower_loss: bool = False) -> Decoupled:
        """The decoupler's embeddings of the views, by ``encoder`` (default:
        the online encoder)."""
        self._check_views(inputs)
        return self.decoupler(encoder or self.encode, list(inputs),
                              with_lower_loss=with_lower_loss)

    def _probe_parts(self, clips: Tensor,
                     features: Tensor) -> Dict[str, Tensor]:
        """``unified``: Z, the temporal mean of the neck's per-frame
        embeddings; then the decoupler's parts (``static`` = Z_A and
        ``dynamic`` = Z_M of ``KoopmanDecoupler``, the derived inputs' of
        ``DerivedInputDecoupler``)."""
        parts = dict(unified=self.neck(features).mean(-1))
        parts.update(self.decoupler.probe_parts(self.encode, clips))
        return parts

    # ------------------------------------------------------------------
    # objectives
    def contrastive_loss(self, parts: Dict[str, Tensor],
                         inputs: List[Tensor]) -> Dict[str, Tensor]:
        """Loss of each part, ``{f'loss_{part}': scalar}``; by default each
        part's head scores the online embeddings alone.

        Args:
            parts: ``{part: (V, N, D)}`` online embeddings.
            inputs: The views, for algorithms with a momentum encoder.
        """
        return {
            f'loss_{part}': self.heads[part].loss(embeddings)
            for part, embeddings in parts.items()
        }

    def _objective(self, inputs: List[Tensor],
                   with_lower_loss: bool) -> Dict[str, Tensor]:
        self._check_post_step_updates()
        decoupled = self.decouple_views(
            inputs, with_lower_loss=with_lower_loss)
        losses = self.contrastive_loss(decoupled.parts, inputs)
        losses.update(decoupled.statistics)
        losses.update(decoupled.lower_losses)
        return losses

    def loss(self, inputs: List[Tensor],
             data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Single-level objective: the contrastive loss(es), plus the
        decoupler's lower-level loss when ``with_lower_loss``.

        Args:
            inputs: V views ``(N, C, T_in, H, W)``.
            data_samples: Unused (self-supervised).
        """
        return self._objective(inputs, self.with_lower_loss)

    def loss_lower(self, inputs: List[Tensor],
                   data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Lower level of bi-level training: the decoupler's lower-level
        loss (``loss_pred`` for ``KoopmanDecoupler``)."""
        self._check_views(inputs)
        context = (
            temporally_local(self.backbone)
            if self.strict_lower else nullcontext())
        with context:
            return self.decoupler.lower_loss(self.encode, list(inputs))

    def loss_upper(self, inputs: List[Tensor],
                   data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Upper level: the contrastive loss of every part. Called once per
        iteration (MoCo enqueues here)."""
        return self._objective(inputs, with_lower_loss=False)

    # ------------------------------------------------------------------
    # training loop
    def after_optim_step(self) -> None:
        """Post-step updates of the heads (SwAV's prototypes)."""
        super().after_optim_step()
        for head in self.heads.values():
            if hasattr(head, 'after_optim_step'):
                head.after_optim_step()
