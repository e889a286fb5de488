"""Decoupling by the Koopman spectrum (BOD-VCL, sec. 4.3)."""
from typing import Dict, List, Optional, Sequence

import torch.distributed as dist
from mmaction.registry import MODELS
from torch import Tensor

from mmbodvcl.functional.koopman import (DEFAULT_NU, DEFAULT_RANK_TOL,
                                         DEFAULT_SPECTRAL_EPS,
                                         DEFAULT_SPECTRAL_GRAD, DEFAULT_XI,
                                         KoopmanSplit, check_options,
                                         koopman_prediction_loss,
                                         koopman_split)
from mmbodvcl.functional.koopman_batch import (
    DEFAULT_BATCH_RIDGE, DEFAULT_SPECTRAL_BOUND, DEFAULT_STATIC_SIZE,
    batch_koopman_split, batch_prediction_loss, check_batch_options,
    per_clip_spectral_terms, spectrum_statistics)
from .base import BaseDecoupler, Decoupled, Encoder, encode_views

CONTRASTS = ('split', 'unified')
_SPLIT_STATISTICS = ('num_static_modes', 'num_dynamic_modes',
                     'eig_static_dist', 'eig_dynamic_dist_min',
                     'eig_dist_median')


@MODELS.register_module()
class KoopmanDecoupler(BaseDecoupler):
    """Fits a linear Koopman operator to each view's per-frame embeddings
    and splits the temporal mean into time-invariant modes
    (``|lambda - 1| < xi``: ``Z_A``, part ``static``) and the rest (``Z_M``,
    part ``dynamic``); its lower-level loss is the prediction loss L_pred.
    The mathematics is :mod:`mmbodvcl.functional.koopman` (docs/koopman.md).

    Args:
        xi: Static threshold, ``0 < xi < 1``.
        nu: Weight of the orthogonality term of L_pred.
        estimator: Fit scored by L_pred: ``'cross_view'`` (default, needs
            >= 2 views), ``'ridge'`` or ``'literal'`` (the paper's eq. 18-19,
            degenerate for M >= T - 1).
        ridge: Relative ridge strength for ``'ridge'`` / ``'cross_view'``.
        split: ``'projector'`` (Z_A + Z_M = Z, default) or
            ``'eigenvalue_weighted'`` (the official code; not a projector).
        rank_tol: Relative singular-value cut of the previous-frame matrix.
        spectral_grad: ``'safe'`` (bounded eig/eigh backward), ``'detach'``
            or ``'native'``.
        spectral_eps: Relative broadening of the safe backward.
        contrast: ``'split'`` (parts ``static`` and ``dynamic``: BOD-VCL) or
            ``'unified'`` (part ``unified``, Z = mean_t z, with L_pred as the
            lower-level loss: the "+ L_pred" ablation).
        min_static: The ``min_static`` modes nearest 1 count as static even
            outside the xi disc (0, the paper: none), so the static part is
            never empty.
        dynamic_pool: How Z_M pools the time-variant part ``T_M z_t`` over
            time: ``'mean'`` (the paper: the temporal mean), ``'std'`` or
            ``'abs_mean'`` (keep what varies, which a mean cancels).
        operator: ``'per_clip'`` (the paper: one operator per clip and
            view, ``T - 1`` modes) or ``'batch'`` (one ``M x M`` operator
            from all clips and views of the batch, all-reduced under DDP in
            training; docs/koopman.md). ``estimator``, ``ridge``, ``split``,
            ``rank_tol`` and ``min_static`` concern the per-clip form only.
        static_size: Batch form: the ``static_size`` eigenvalues nearest 1
            (conjugate pairs together) are static; 0: the disc
            ``|lambda - 1| < xi``.
        spectral_static: Weight of ``mean |lambda_s - 1|^2`` (static
            eigenvalues pulled to 1) in the lower-level loss.
        spectral_dynamic: Weight of ``mean relu(bound - |lambda_d - 1|)^2``
            (the other eigenvalues pushed out of the disc).
        spectral_bound: That bound, ``0 < bound < 2``.
        batch_ridge: Relative ridge of the batch fit
            (``lam = batch_ridge * tr(G) / M``), > 0.
    """
    has_lower_loss = True

    def __init__(self,
                 xi: float = DEFAULT_XI,
                 nu: float = DEFAULT_NU,
                 estimator: str = 'cross_view',
                 ridge: float = 1e-6,
                 split: str = 'projector',
                 rank_tol: float = DEFAULT_RANK_TOL,
                 spectral_grad: str = DEFAULT_SPECTRAL_GRAD,
                 spectral_eps: float = DEFAULT_SPECTRAL_EPS,
                 contrast: str = 'split',
                 min_static: int = 0,
                 dynamic_pool: str = 'mean',
                 operator: str = 'per_clip',
                 static_size: int = DEFAULT_STATIC_SIZE,
                 spectral_static: float = 0.0,
                 spectral_dynamic: float = 0.0,
                 spectral_bound: float = DEFAULT_SPECTRAL_BOUND,
                 batch_ridge: float = DEFAULT_BATCH_RIDGE) -> None:
        super().__init__()
        check_batch_options(operator, static_size, spectral_static,
                            spectral_dynamic, spectral_bound, batch_ridge)
        if operator == 'batch' and split != 'projector':
            raise ValueError(f"KoopmanDecoupler: split={split!r} needs "
                             "operator='per_clip' (the batch split is the "
                             'spectral projector)')
        check_options(xi=xi, split=split, estimator=estimator, nu=nu,
                      ridge=ridge, rank_tol=rank_tol,
                      spectral_grad=spectral_grad, spectral_eps=spectral_eps,
                      min_static=min_static, dynamic_pool=dynamic_pool)
        if contrast not in CONTRASTS:
            raise ValueError(f'KoopmanDecoupler: contrast={contrast!r}, '
                             f'expected one of {CONTRASTS}')
        self.xi = xi
        self.split_mode = split
        self.split_cfg = dict(min_static=min_static,
                              dynamic_pool=dynamic_pool)
        self.contrast = contrast
        self.spectral_cfg = dict(rank_tol=rank_tol,
                                 spectral_grad=spectral_grad,
                                 spectral_eps=spectral_eps)
        self.loss_cfg = dict(estimator=estimator, nu=nu, ridge=ridge)
        self.operator = operator
        self.batch_cfg = dict(static_size=static_size, ridge=batch_ridge)
        self.spectral_cfg_loss = dict(spectral_static=spectral_static,
                                      spectral_dynamic=spectral_dynamic,
                                      spectral_bound=spectral_bound)

    def _distributed(self) -> bool:
        """All-reduce the batch sums in training only: evaluation (one view,
        the probes) may run on a single rank."""
        return self.training and dist.is_available() and (
            dist.is_initialized() and dist.get_world_size() > 1)

    @property
    def parts(self):
        return ('static', 'dynamic') if self.contrast == 'split' else (
            'unified', )

    @property
    def statistics(self):
        return _SPLIT_STATISTICS if self.contrast == 'split' else ()

    def split(self, z: Tensor, xi: Optional[float] = None) -> KoopmanSplit:
        """Static/dynamic split of per-frame embeddings ``(B, M, T)`` at this
        decoupler's threshold, or at ``xi`` (e.g. for a probe; the batch
        form with ``static_size > 0`` selects by rank, not by ``xi``)."""
        xi = self.xi if xi is None else xi
        if self.operator == 'batch':
            return batch_koopman_split(
                z, xi=xi, **self.batch_cfg,
                spectral_grad=self.spectral_cfg['spectral_grad'],
                spectral_eps=self.spectral_cfg['spectral_eps'],
                dynamic_pool=self.split_cfg['dynamic_pool'],
                distributed=self._distributed())
        return koopman_split(z, xi=xi,
                             split=self.split_mode, **self.split_cfg,
                             **self.spectral_cfg)

    def prediction_loss(self, views: Sequence[Tensor]) -> Dict[str, Tensor]:
        """L_pred of V per-frame embeddings ``(N, M, T)``: ``loss_pred``
        (MSE + nu * orthogonality [+ spectral terms]) and the logged
        ``pred_mse``, ``pred_orth`` (and ``pred_spec_static``,
        ``pred_spec_dynamic`` with the batch operator or a spectral
        weight)."""
        if self.operator == 'batch':
            result = batch_prediction_loss(
                views, nu=self.loss_cfg['nu'], xi=self.xi, **self.batch_cfg,
                **self.spectral_cfg_loss, distributed=self._distributed())
            return dict(loss_pred=result.loss, pred_mse=result.mse.detach(),
                        pred_orth=result.orthogonality.detach(),
                        pred_spec_static=result.spectral_static.detach(),
                        pred_spec_dynamic=result.spectral_dynamic.detach())
        result = koopman_prediction_loss(views, **self.loss_cfg,
                                         **self.spectral_cfg)
        losses = dict(loss_pred=result.loss, pred_mse=result.mse.detach(),
                      pred_orth=result.orthogonality.detach())
        weights = self.spectral_cfg_loss
        if weights['spectral_static'] > 0 or weights['spectral_dynamic'] > 0:
            pulled, pushed = per_clip_spectral_terms(
                views, self.xi, self.split_cfg['min_static'],
                weights['spectral_bound'],
                **self.spectral_cfg)
            losses['loss_pred'] = losses['loss_pred'] + (
                weights['spectral_static'] * pulled +
                weights['spectral_dynamic'] * pushed).float()
            losses.update(pred_spec_static=pulled.detach().float(),
                          pred_spec_dynamic=pushed.detach().float())
        return losses

    def forward(self,
                encoder: Encoder,
                views: List[Tensor],
                with_lower_loss: bool = False) -> Decoupled:
        z = encode_views(encoder, views)  # (V, N, M, T)
        lower = self.prediction_loss(list(z)) if with_lower_loss else {}
        if self.contrast == 'unified':
            return Decoupled({'unified': z.mean(-1)}, lower_losses=lower)
        split = self.split(z.flatten(0, 1))
        shape = z.shape[:2] + (-1, )
        parts = dict(static=split.static.reshape(shape),
                     dynamic=split.dynamic.reshape(shape))
        statistics = spectrum_statistics(split.eigvals, split.static_mask)
        return Decoupled(parts, statistics, lower)

    def lower_loss(self, encoder: Encoder,
                   views: List[Tensor]) -> Dict[str, Tensor]:
        return self.prediction_loss(list(encode_views(encoder, views)))
