"""Decoupling by input: a static frame and frame differences."""
from typing import Dict, List

from mmaction.registry import MODELS
from torch import Tensor

from mmbodvcl.functional.derived_inputs import (draw_frame_index,
                                                frame_difference_clip,
                                                static_frame_clip)
from .base import BaseDecoupler, Decoupled, Encoder, encode_views


@MODELS.register_module()
class DerivedInputDecoupler(BaseDecoupler):
    """Static and dynamic embeddings from inputs that carry only one kind of
    information, through the shared encoder: part ``static`` encodes one
    frame of the clip repeated T times, part ``dynamic`` the differences of
    adjacent frames (T - 1 of them); each is averaged over time. This is the
    two-stream decoupling of the BOD-VCL paper (Corollary 1) with one shared
    network, and the input construction of Static and Dynamic Concepts.

    Args:
        static_frame: Which frame is repeated: ``'random'`` (uniform per
            clip, default), ``'first'`` or ``'middle'``.
        grayscale_difference: Difference grey frames (replicated to 3
            channels), so that a constant colour leaves no trace in the
            dynamic input.
    """
    parts = ('static', 'dynamic')

    def __init__(self,
                 static_frame: str = 'random',
                 grayscale_difference: bool = False) -> None:
        super().__init__()
        if static_frame not in ('random', 'first', 'middle'):
            raise ValueError(
                f'DerivedInputDecoupler: static_frame={static_frame!r}, '
                "expected 'random', 'first' or 'middle'")
        self.static_frame = static_frame
        self.grayscale_difference = grayscale_difference

    def derive(self, clips: Tensor) -> Dict[str, Tensor]:
        """``clips (B, C, T, H, W)`` -> ``{'static': (B, C, T, H, W),
        'dynamic': (B, C, T - 1, H, W)}``."""
        index = draw_frame_index(clips, self.static_frame)
        return dict(
            static=static_frame_clip(clips, index),
            dynamic=frame_difference_clip(clips, self.grayscale_difference))

    def forward(self,
                encoder: Encoder,
                views: List[Tensor],
                with_lower_loss: bool = False) -> Decoupled:
        derived = [self.derive(view) for view in views]
        return Decoupled({
            part: encode_views(encoder, [d[part] for d in derived]).mean(-1)
            for part in self.parts
        })
