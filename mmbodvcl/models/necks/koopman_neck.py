from dataclasses import fields
from typing import Dict, List, Optional, Sequence, Union

import torch
from mmaction.registry import MODELS
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmbodvcl.functional import (KoopmanSplit, check_features, check_options,
                                 koopman_prediction_loss, koopman_split)


@MODELS.register_module()
class KoopmanNeck(BaseModule):
    """Per-frame projection and Koopman decomposition (BOD-VCL, sec. 4.3).

    ``forward`` pools space (time kept) and applies a projection MLP to every
    frame, like MMPretrain's ``NonLinearNeck`` applied over ``N * T`` rows.
    ``prediction_loss`` and ``split`` are thin wrappers of
    :mod:`mmbodvcl.functional.koopman`, which documents the mathematics.

    Args:
        in_channels: Backbone channels C.
        hid_channels: Hidden width of the MLP (2048; BYOL 4096).
        out_channels: Koopman dimension M (128).
        num_layers: Linear layers in the MLP (3; BYOL 2).
        with_bias: Bias in the hidden linear layers.
        with_last_bn: BatchNorm after the last linear layer.
        with_last_bn_affine: Affine parameters of that BatchNorm.
        with_last_bias: Bias in the last linear layer.
        norm_cfg: Normalisation of the MLP (``BN1d``; ``SyncBN`` under DDP).
        xi: Static threshold ``|lambda - 1| < xi``, ``0 < xi < 1``.
        nu: Weight of the orthogonality term of L_pred.
        estimator: Fit scored by L_pred: ``'cross_view'`` (default, needs
            >= 2 views), ``'ridge'`` or ``'literal'`` (the paper's eq. 18-19,
            degenerate for M >= T - 1); see docs/koopman.md.
        ridge: Relative ridge strength for ``'ridge'``/``'cross_view'``
            (0 makes ``'cross_view'`` use the pseudo-inverse).
        split: ``'projector'`` (Z_A + Z_M = Z, default) or
            ``'eigenvalue_weighted'`` (official code; not a projector).
        rank_tol: Relative singular-value cut of the previous-frame matrix.
        spectral_grad: ``'safe'`` (bounded eig/eigh backward), ``'detach'``
            (the split's operator is a constant) or ``'native'``.
        spectral_eps: Relative broadening of the safe backward.
        init_cfg: MMEngine initialisation config.
    """

    def __init__(self,
                 in_channels: int,
                 hid_channels: int = 2048,
                 out_channels: int = 128,
                 num_layers: int = 3,
                 with_bias: bool = False,
                 with_last_bn: bool = True,
                 with_last_bn_affine: bool = True,
                 with_last_bias: bool = False,
                 norm_cfg: Optional[dict] = None,
                 xi: float = 0.1,
                 nu: float = 1e-4,
                 estimator: str = 'cross_view',
                 ridge: float = 1e-6,
                 split: str = 'projector',
                 rank_tol: float = 1e-4,
                 spectral_grad: str = 'safe',
                 spectral_eps: float = 1e-10,
                 init_cfg: Optional[Union[dict, List[dict]]] = dict(
                     type='Constant', val=1, layer=['_BatchNorm',
                                                    'GroupNorm'])) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value in (('in_channels', in_channels),
                            ('hid_channels', hid_channels),
                            ('out_channels', out_channels),
                            ('num_layers', num_layers)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f'KoopmanNeck: {name}={value!r}, expected a '
                                 'positive int')
        check_options(xi=xi, split=split, estimator=estimator, nu=nu,
                      ridge=ridge, rank_tol=rank_tol,
                      spectral_grad=spectral_grad, spectral_eps=spectral_eps)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.koopman_cfg = dict(rank_tol=rank_tol, spectral_grad=spectral_grad,
                                spectral_eps=spectral_eps)
        self.xi, self.nu, self.ridge = xi, nu, ridge
        self.estimator, self.split_mode = estimator, split
        norm_cfg = norm_cfg or dict(type='BN1d')

        layers: List[nn.Module] = []
        width = in_channels
        for _ in range(num_layers - 1):
            layers += [
                nn.Linear(width, hid_channels, bias=with_bias),
                build_norm_layer(norm_cfg, hid_channels)[1],
                nn.ReLU(inplace=True)
            ]
            width = hid_channels
        layers.append(nn.Linear(width, out_channels, bias=with_last_bias))
        if with_last_bn:
            layers.append(
                build_norm_layer(dict(norm_cfg, affine=with_last_bn_affine),
                                 out_channels)[1])
        self.projector = nn.Sequential(*layers)

    def forward(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Per-frame projection.

        Args:
            feats: ``(N, C, T, h, w)`` (pooled over space) or ``(N, C, T)``,
                or a 1-tuple of either (MMAction2 backbones with one
                ``out_indices``).

        Returns:
            ``(N, M, T)`` per-frame features z.
        """
        if isinstance(feats, (tuple, list)):
            if len(feats) != 1:
                raise ValueError(f'KoopmanNeck takes one feature map, got a '
                                 f'sequence of {len(feats)}; set the '
                                 "backbone's out_indices to its last stage")
            feats = feats[0]
        if not isinstance(feats, Tensor) or feats.dim() not in (3, 5):
            shape = tuple(feats.shape) if isinstance(feats, Tensor) else (
                type(feats).__name__)
            raise ValueError('KoopmanNeck expects features (N, C, T, h, w) '
                             f'or (N, C, T), got {shape}')
        if feats.dim() == 5:
            feats = feats.mean(dim=(3, 4))
        num_videos, channels, num_frames = feats.shape
        if channels != self.in_channels:
            raise ValueError(f'KoopmanNeck: features have C={channels} '
                             f'channels, in_channels={self.in_channels}')
        if num_frames < 2:
            raise ValueError(f'KoopmanNeck: features have T={num_frames} '
                             'temporal positions; the Koopman fit needs '
                             'T >= 2 (use a backbone that keeps time)')
        frames = feats.transpose(1, 2).reshape(num_videos * num_frames,
                                               channels)
        z = self.projector(frames)
        return z.reshape(num_videos, num_frames, -1).transpose(1, 2)

    def _check_z(self, z: Tensor, name: str) -> None:
        check_features(z, name)
        if z.shape[1] != self.out_channels:
            raise ValueError(f'KoopmanNeck: {name} has M={z.shape[1]}, '
                             f'out_channels={self.out_channels}')

    def prediction_loss(self, views: Sequence[Tensor]) -> Dict[str, Tensor]:
        """L_pred over the views of a batch.

        Args:
            views: V tensors ``(N, M, T)`` from :meth:`forward`.

        Returns:
            ``loss_pred`` (MSE + nu * orthogonality) and the logged parts
            ``pred_mse`` and ``pred_orth``.
        """
        for index, view in enumerate(views):
            self._check_z(view, f'views[{index}]')
        result = koopman_prediction_loss(
            views, estimator=self.estimator, nu=self.nu, ridge=self.ridge,
            **self.koopman_cfg)
        return dict(loss_pred=result.loss, pred_mse=result.mse.detach(),
                    pred_orth=result.orthogonality.detach())

    def split(self, z: Tensor) -> KoopmanSplit:
        """Static/dynamic split of one view ``(N, M, T)``; see
        :class:`~mmbodvcl.functional.koopman.KoopmanSplit`."""
        self._check_z(z, 'z')
        return koopman_split(z, xi=self.xi, split=self.split_mode,
                             **self.koopman_cfg)

    def split_views(self, views: Sequence[Tensor]) -> List[KoopmanSplit]:
        """:meth:`split` of every view ``(N, M, T)``, decomposed in one batch.
        """
        for index, view in enumerate(views):
            if view.shape != views[0].shape:
                raise ValueError(
                    f'views[{index}] has shape {tuple(view.shape)}, views[0] '
                    f'has {tuple(views[0].shape)}; all views must match')
        joined = self.split(torch.cat(list(views), dim=0))
        chunks = {
            field.name: getattr(joined, field.name).chunk(len(views))
            for field in fields(KoopmanSplit)
        }
        return [
            KoopmanSplit(**{name: parts[index]
                            for name, parts in chunks.items()})
            for index in range(len(views))
        ]
