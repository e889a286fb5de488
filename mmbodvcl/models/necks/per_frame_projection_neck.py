"""Per-frame projection of backbone features that keep time."""
from typing import List, Optional, Sequence, Union

from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from ..utils import NamedMLP


@MODELS.register_module()
# Deprecated name of configs written before the decoupler existed.
@MODELS.register_module(name='KoopmanNeck')
class PerFrameProjectionNeck(BaseModule):
    """Pools space (time kept) and applies a projection MLP to every frame,
    like MMPretrain's ``NonLinearNeck`` applied over ``N * T`` rows.

    A neck only projects: how the embeddings are decoupled (e.g. the
    Koopman split of BOD-VCL) is the algorithm's ``decoupler``. The
    registered name ``KoopmanNeck`` builds this class too, only so that
    configs and checkpoints written before the decoupler existed still load
    (CHANGELOG.md); new configs say ``PerFrameProjectionNeck``.

    Args:
        in_channels: Backbone channels C.
        hid_channels: Hidden width of the MLP (2048; BYOL 4096).
        out_channels: Embedding size M (128).
        num_layers: Linear layers in the MLP (3; BYOL 2).
        with_bias: Bias in the hidden linear layers.
        with_last_bn: BatchNorm after the last linear layer.
        with_last_bn_affine: Affine parameters of that BatchNorm.
        with_last_bias: Bias in the last linear layer.
        norm_cfg: Normalisation of the MLP (``BN1d``; ``SyncBN`` under DDP).
        init_cfg: MMEngine initialisation config.

    The MLP's layers are ``projector.fc{i}``, ``projector.bn{i}`` and
    ``projector.relu{i}``.
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
                 init_cfg: Optional[Union[dict, List[dict]]] = dict(
                     type='Constant', val=1, layer=['_BatchNorm',
                                                    'GroupNorm'])) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f'{type(self).__name__}: num_layers='
                             f'{num_layers!r}, expected a positive int')
        self.in_channels = in_channels
        self.out_channels = out_channels
        norm_cfg = norm_cfg or dict(type='BN1d')
        self.projector = NamedMLP(
            [in_channels] + [hid_channels] * (num_layers - 1) +
            [out_channels],
            norm_cfg=norm_cfg,
            hidden_bias=with_bias,
            last_bias=with_last_bias,
            last_norm_cfg=dict(norm_cfg, affine=with_last_bn_affine)
            if with_last_bn else None)

    @classmethod
    def pool(cls, feats: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Spatial average of backbone features, time kept: the per-frame
        features ``h_t`` the projection is applied to.

        Args:
            feats: ``(N, C, T, h, w)`` or ``(N, C, T)``, or a 1-tuple of
                either (MMAction2 backbones with one ``out_indices``).

        Returns:
            ``(N, C, T)``.
        """
        name = cls.__name__
        if isinstance(feats, (tuple, list)):
            if len(feats) != 1:
                raise ValueError(f'{name} takes one feature map, got a '
                                 f'sequence of {len(feats)}; set the '
                                 "backbone's out_indices to its last stage")
            feats = feats[0]
        if not isinstance(feats, Tensor) or feats.dim() not in (3, 5):
            shape = tuple(feats.shape) if isinstance(feats, Tensor) else (
                type(feats).__name__)
            raise ValueError(f'{name} expects features (N, C, T, h, w) or '
                             f'(N, C, T), got {shape}')
        return feats.mean(dim=(3, 4)) if feats.dim() == 5 else feats

    def forward(self, feats: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """Per-frame projection of :meth:`pool`'s features.

        Args:
            feats: Backbone features, as :meth:`pool` takes them.

        Returns:
            ``(N, M, T)`` per-frame embeddings z.
        """
        feats = self.pool(feats)
        num_videos, channels, num_frames = feats.shape
        if channels != self.in_channels:
            raise ValueError(f'{type(self).__name__}: features have '
                             f'C={channels} channels, '
                             f'in_channels={self.in_channels}')
        frames = feats.transpose(1, 2).reshape(num_videos * num_frames,
                                               channels)
        z = self.projector(frames)
        return z.reshape(num_videos, num_frames, -1).transpose(1, 2)
