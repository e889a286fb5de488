"""S3D-G: separable 3D Inception with feature gating (Xie et al., ECCV 2018).

MMAction2 has no S3D-G. This is the architecture of "Rethinking
Spatiotemporal Feature Learning" (the 9.1M-parameter network of Table 3 of
the BOD-VCL paper). Temporal downsampling is configurable because BOD-VCL
needs time kept at the last stage (the Koopman operator is fitted over it):
the original network divides time by 8, the default here by 2.
"""
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import ConvModule
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from mmaction.registry import MODELS

# Inception channels of each Mixed block, as in the paper:
# (in, branch0 1x1, branch1 1x1 -> 3x3x3, branch2 1x1 -> 3x3x3,
#  branch3 pool -> 1x1)
_MIXED_CHANNELS: Dict[str, Tuple[int, int, Tuple[int, int], Tuple[int, int],
                                 int]] = {
    'mixed_3b': (192, 64, (96, 128), (16, 32), 32),
    'mixed_3c': (256, 128, (128, 192), (32, 96), 64),
    'mixed_4b': (480, 192, (96, 208), (16, 48), 64),
    'mixed_4c': (512, 160, (112, 224), (24, 64), 64),
    'mixed_4d': (512, 128, (128, 256), (24, 64), 64),
    'mixed_4e': (512, 112, (144, 288), (32, 64), 64),
    'mixed_4f': (528, 256, (160, 320), (32, 128), 128),
    'mixed_5b': (832, 256, (160, 320), (32, 128), 128),
    'mixed_5c': (832, 384, (192, 384), (48, 128), 128),
}


class SepConv3d(nn.Sequential):
    """A ``k x k x k`` convolution factorised into spatial ``1 x k x k`` then
    temporal ``k x 1 x 1``, each followed by norm and activation.

    Shapes: ``(N, C_in, T, H, W) -> (N, C_out, T / s_t, H / s, W / s)``.
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int,
                 spatial_stride: int = 1,
                 temporal_stride: int = 1,
                 conv_cfg: Dict = dict(type='Conv3d'),
                 norm_cfg: Dict = dict(type='BN3d'),
                 act_cfg: Dict = dict(type='ReLU')) -> None:
        pad = kernel_size // 2
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg,
                      bias=False)
        super().__init__(
            ConvModule(in_channels, out_channels,
                       (1, kernel_size, kernel_size),
                       stride=(1, spatial_stride, spatial_stride),
                       padding=(0, pad, pad), **common),
            ConvModule(out_channels, out_channels, (kernel_size, 1, 1),
                       stride=(temporal_stride, 1, 1), padding=(pad, 0, 0),
                       **common))


class SelfGating(nn.Module):
    """Feature gating of S3D-G: ``x * sigmoid(W mean_{t,h,w}(x) + b)``.

    Shapes: ``(N, C, T, H, W) -> (N, C, T, H, W)``.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.fc = nn.Linear(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        weights = torch.sigmoid(self.fc(x.mean(dim=(2, 3, 4))))
        return x * weights[:, :, None, None, None]


class MixedBlock(nn.Module):
    """Inception block with separable 3x3x3 convolutions and (optionally)
    feature gating on each branch.

    Shapes: ``(N, C_in, T, H, W) -> (N, C_out, T, H, W)`` with ``C_out`` the
    sum of the four branch widths.
    """

    def __init__(self,
                 in_channels: int,
                 branch0: int,
                 branch1: Tuple[int, int],
                 branch2: Tuple[int, int],
                 branch3: int,
                 gating: bool = True,
                 conv_cfg: Dict = dict(type='Conv3d'),
                 norm_cfg: Dict = dict(type='BN3d'),
                 act_cfg: Dict = dict(type='ReLU')) -> None:
        super().__init__()
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)

        def unit(cin: int, cout: int) -> ConvModule:
            return ConvModule(cin, cout, 1, bias=False, **common)

        self.branch0 = unit(in_channels, branch0)
        self.branch1 = nn.Sequential(
            unit(in_channels, branch1[0]),
            SepConv3d(branch1[0], branch1[1], 3, **common))
        self.branch2 = nn.Sequential(
            unit(in_channels, branch2[0]),
            SepConv3d(branch2[0], branch2[1], 3, **common))
        self.branch3 = nn.Sequential(
            nn.MaxPool3d(3, stride=1, padding=1), unit(in_channels, branch3))
        widths = (branch0, branch1[1], branch2[1], branch3)
        self.out_channels = sum(widths)
        self.gates = nn.ModuleList(
            [SelfGating(w) for w in widths]) if gating else None

    def forward(self, x: Tensor) -> Tensor:
        outs = [
            self.branch0(x),
            self.branch1(x),
            self.branch2(x),
            self.branch3(x)
        ]
        if self.gates is not None:
            outs = [gate(out) for gate, out in zip(self.gates, outs)]
        return torch.cat(outs, dim=1)


@MODELS.register_module()
class S3DG(BaseModule):
    """S3D-G backbone.

    Args:
        in_channels: Input channels.
        gating: Use feature gating (S3D-G); ``False`` gives plain S3D.
        conv1_stride_t: Temporal stride of the first convolution
            (2 in the original network).
        pool_strides_t: Temporal strides of the max-pools before
            ``mixed_4b`` and ``mixed_5b`` (``(2, 2)`` in the original
            network; ``(1, 1)`` keeps time for BOD-VCL).
        out_indices: Stages whose output is returned, among
            0 (``mixed_3c``), 1 (``mixed_4f``) and 2 (``mixed_5c``).
        frozen_stages: Stages to freeze (parameters fixed, norm in eval mode):
            ``-1`` none, ``0`` the stem, ``k`` the stem and the first ``k``
            stages (``3`` freezes everything, for linear probing).
        norm_eval: Keep BatchNorm layers in eval mode during training.
        conv_cfg, norm_cfg, act_cfg: Layer configs passed to
            :class:`mmcv.cnn.ConvModule`.
        init_cfg: MMEngine initialisation config (e.g. ``Pretrained``).

    Shapes: ``(N, C_in, T, H, W) -> (N, 1024, T / (s_conv1 * prod(s_pool)),
    H / 32, W / 32)``; a tuple when several ``out_indices`` are requested.
    """

    stage_blocks = (('mixed_3b', 'mixed_3c'),
                    ('mixed_4b', 'mixed_4c', 'mixed_4d', 'mixed_4e',
                     'mixed_4f'), ('mixed_5b', 'mixed_5c'))

    def __init__(self,
                 in_channels: int = 3,
                 gating: bool = True,
                 conv1_stride_t: int = 2,
                 pool_strides_t: Sequence[int] = (1, 1),
                 out_indices: Sequence[int] = (2, ),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 conv_cfg: Dict = dict(type='Conv3d'),
                 norm_cfg: Dict = dict(type='BN3d', requires_grad=True),
                 act_cfg: Dict = dict(type='ReLU', inplace=True),
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if len(pool_strides_t) != 2:
            raise ValueError(f'S3DG: pool_strides_t must have 2 entries (the '
                             f'pools before mixed_4b and mixed_5b), got '
                             f'{tuple(pool_strides_t)}')
        if not set(out_indices) <= {0, 1, 2} or not out_indices:
            raise ValueError(f'S3DG: out_indices must be a non-empty subset '
                             f'of (0, 1, 2), got {tuple(out_indices)}')
        if not -1 <= frozen_stages <= 3:
            raise ValueError(f'S3DG: frozen_stages must be in [-1, 3], got '
                             f'{frozen_stages}')
        self.out_indices = tuple(out_indices)
        self.frozen_stages = frozen_stages
        self.norm_eval = norm_eval
        common = dict(conv_cfg=conv_cfg, norm_cfg=norm_cfg, act_cfg=act_cfg)

        self.stem = nn.Sequential(
            SepConv3d(in_channels, 64, 7, spatial_stride=2,
                      temporal_stride=conv1_stride_t, **common),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)),
            ConvModule(64, 64, 1, bias=False, **common),
            SepConv3d(64, 192, 3, **common),
            nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1)))
        # Pools between stages; the original uses 3x3x3/2 then 2x2x2/2. The
        # second pool's temporal kernel equals its stride so that stride 1
        # keeps every frame.
        stage_pools = [
            nn.Identity(),
            nn.MaxPool3d((3, 3, 3), stride=(pool_strides_t[0], 2, 2),
                         padding=(1, 1, 1)),
            nn.MaxPool3d((pool_strides_t[1], 2, 2),
                         stride=(pool_strides_t[1], 2, 2)),
        ]
        self.stages = nn.ModuleList()
        for pool, names in zip(stage_pools, self.stage_blocks):
            blocks = [
                MixedBlock(*_MIXED_CHANNELS[name], gating=gating, **common)
                for name in names
            ]
            self.stages.append(nn.Sequential(pool, *blocks))

    def forward(self, x: Tensor) -> Union[Tensor, Tuple[Tensor, ...]]:
        """``(N, C_in, T, H, W)`` -> features of the requested stages."""
        if x.dim() != 5:
            raise ValueError(f'S3DG expects inputs of shape (N, C, T, H, W), '
                             f'got {tuple(x.shape)}')
        x = self.stem(x)
        outs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.out_indices:
                outs.append(x)
        return outs[0] if len(outs) == 1 else tuple(outs)

    def _freeze_stages(self) -> None:
        if self.frozen_stages < 0:
            return
        for module in [self.stem, *self.stages[:self.frozen_stages]]:
            module.eval()
            for param in module.parameters():
                param.requires_grad = False

    def init_weights(self) -> None:
        super().init_weights()
        self._freeze_stages()

    def train(self, mode: bool = True) -> 'S3DG':
        super().train(mode)
        self._freeze_stages()
        if mode and self.norm_eval:
            for module in self.modules():
                if isinstance(module, _BatchNorm):
                    module.eval()
        return self
