"""Batch the views of a multi-view video batch for the V-CL algorithms."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmaction.models import ActionDataPreprocessor
from mmaction.registry import MODELS
from mmaction.utils import SampleList


@MODELS.register_module()
class MultiViewDataPreprocessor(ActionDataPreprocessor):
    """MMAction2's ``ActionDataPreprocessor`` that returns one tensor per view.

    Takes the packed samples of :class:`PackMultiViewInputs` (each
    ``Tensor(V, 3, T, H, W)``, uint8), stacks, casts, optionally swaps
    BGR/RGB and normalises them as MMAction2 does for ``'NCTHW'``, and returns
    ``inputs = [Tensor(N, 3, T, H, W)] * V``: view ``v`` of video ``i`` is row
    ``i`` of ``inputs[v]``.

    Samples of different shapes are refused (MMEngine's ``stack_batch``
    would zero-pad them silently). Batch blending (MixUp/CutMix) has no
    meaning without labels and is not offered.

    Args:
        mean: Per-channel pixel mean, e.g. ``(123.675, 116.28, 103.53)``.
        std: Per-channel pixel std, e.g. ``(58.395, 57.12, 57.375)``.
        to_rgb: Swap the channel order (decord already gives RGB).
        to_float32: Cast to float32 when not normalising.
    """

    def __init__(self,
                 mean: Optional[Sequence[Union[float, int]]] = None,
                 std: Optional[Sequence[Union[float, int]]] = None,
                 to_rgb: bool = False,
                 to_float32: bool = True) -> None:
        super().__init__(
            mean=mean,
            std=std,
            to_rgb=to_rgb,
            to_float32=to_float32,
            format_shape='NCTHW')

    def preprocess(self,
                   inputs: List[torch.Tensor],
                   data_samples: SampleList,
                   training: bool = False) -> Tuple[List[torch.Tensor],
                                                    SampleList]:
        """``inputs``: N tensors ``(V, 3, T, H, W)`` -> V tensors
        ``(N, 3, T, H, W)``, float, normalised."""
        shapes = [tuple(sample.shape) for sample in inputs]
        if any(len(shape) != 5 or shape[1] != 3 for shape in shapes) \
                or len(set(shapes)) != 1:
            raise ValueError(
                'MultiViewDataPreprocessor expects every sample as a tensor '
                f'(V, 3, T, H, W) of one common shape, got {shapes}; pack '
                'the samples with PackMultiViewInputs.')
        batch, data_samples = super().preprocess(inputs, data_samples,
                                                 training)
        views = [view.contiguous() for view in batch.unbind(dim=1)]
        return views, data_samples
