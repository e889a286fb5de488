"""The "strict" ablation of the paper's Table 10: a temporally local network.

Inside :func:`temporally_local`, every ``nn.Conv3d`` applies only the centre
temporal slice of its kernel (temporal stride and dilation 1, temporal
padding 0) and every ``MaxPool3d`` / ``AvgPool3d`` has temporal kernel and
stride 1, so the network becomes a per-frame 2D network: ``L_pred``
computed inside it sees no cross-frame information and its gradient reaches
only the centre (spatial) slices of the 3D kernels. Everything is restored
on exit.
"""
from contextlib import contextmanager
from typing import Iterator, List, Tuple

import torch.nn.functional as F
from torch import Tensor, nn


def _centre_slice_forward(conv: nn.Conv3d):
    kernel_t = conv.kernel_size[0]
    centre = kernel_t // 2
    stride = (1, ) + tuple(conv.stride[1:])
    padding = (0, ) + tuple(conv.padding[1:])
    dilation = (1, ) + tuple(conv.dilation[1:])

    def forward(x: Tensor) -> Tensor:
        # Read the weight at call time: functional_call may have swapped it.
        weight = conv.weight[:, :, centre:centre + 1]
        return F.conv3d(x, weight, conv.bias, stride, padding, dilation,
                        conv.groups)

    return forward


def _check_conv(name: str, conv: nn.Conv3d) -> None:
    if conv.kernel_size[0] % 2 == 0:
        raise ValueError(
            f'temporally_local: Conv3d {name!r} has an even temporal kernel '
            f'size {conv.kernel_size[0]}, which has no centre slice')
    if isinstance(conv.padding, str) or conv.padding_mode != 'zeros':
        raise ValueError(
            f'temporally_local: Conv3d {name!r} uses padding={conv.padding!r}'
            f', padding_mode={conv.padding_mode!r}; only explicit zero '
            'padding is supported')


def _triple(value) -> Tuple[int, int, int]:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, ) * 3


@contextmanager
def temporally_local(backbone: nn.Module) -> Iterator[nn.Module]:
    """Make ``backbone``'s 3D convolutions and pools act frame by frame.

    Args:
        backbone: any module; its ``nn.Conv3d``, ``nn.MaxPool3d`` and
            ``nn.AvgPool3d`` submodules are changed while the context is
            open. Input ``(N, C, T, H, W)`` gives an output with the same
            ``T`` (no temporal down-sampling).

    Yields:
        ``backbone`` itself.
    """
    patched_convs: List[nn.Conv3d] = []
    patched_pools: List[Tuple[nn.Module, tuple]] = []
    try:
        for name, module in backbone.named_modules():
            if isinstance(module, nn.Conv3d):
                _check_conv(name, module)
                if 'forward' in module.__dict__:
                    raise ValueError(
                        f'temporally_local: Conv3d {name!r} already has a '
                        'patched forward (nested temporally_local?)')
                module.forward = _centre_slice_forward(module)
                patched_convs.append(module)
            elif isinstance(module, (nn.MaxPool3d, nn.AvgPool3d)):
                saved = (module.kernel_size, module.stride, module.padding)
                kernel, stride, padding = (_triple(v) for v in saved)
                module.kernel_size = (1, ) + kernel[1:]
                module.stride = (1, ) + stride[1:]
                module.padding = (0, ) + padding[1:]
                patched_pools.append((module, saved))
        yield backbone
    finally:
        for conv in patched_convs:
            del conv.forward
        for pool, (kernel, stride, padding) in patched_pools:
            pool.kernel_size, pool.stride = kernel, stride
            pool.padding = padding
