"""Decoupling by input: a static frame and frame differences."""
from typing import Dict, List, Optional

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

    For evaluation (:meth:`probe_parts`) a ``'random'`` static frame becomes
    the middle one, so that probes are deterministic and draw no random
    numbers (which would shift the training batches that follow).

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

    def derive(self, clips: Tensor,
               static_frame: Optional[str] = None) -> Dict[str, Tensor]:
        """``clips (B, C, T, H, W)`` -> ``{'static': (B, C, T, H, W),
        'dynamic': (B, C, T - 1, H, W)}``; ``static_frame`` overrides the
        configured choice of the repeated frame."""
        index = draw_frame_index(clips, static_frame or self.static_frame)
        return dict(
            static=static_frame_clip(clips, index),
            dynamic=frame_difference_clip(clips, self.grayscale_difference))

    def forward(self,
                encoder: Encoder,
                views: List[Tensor],
                with_lower_loss: bool = False) -> Decoupled:
        return Decoupled(self._encode(encoder, views, self.static_frame))

    def probe_parts(self, encoder: Encoder,
                    clips: Tensor) -> Dict[str, Tensor]:
        parts = self._encode(encoder, [clips], self.probe_static_frame)
        return {part: value[0] for part, value in parts.items()}

    @property
    def probe_static_frame(self) -> str:
        """The repeated frame of evaluation inputs: the configured one, the
        middle frame for ``'random'``."""
        return 'middle' if self.static_frame == 'random' else (
            self.static_frame)

    def _encode(self, encoder: Encoder, views: List[Tensor],
                static_frame: str) -> Dict[str, Tensor]:
        """``{part: (V, N, D)}``: each derived input's embeddings, averaged
        over time."""
        derived = [self.derive(view, static_frame) for view in views]
        return {
            part: encode_views(encoder, [d[part] for d in derived]).mean(-1)
            for part in self.parts
        }
