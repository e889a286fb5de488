"""Pre-rendered synthetic clips as tensors for the experiments' own loops.

Rendering is the slow part of the synthetic data (about 2 ms per 8-frame
32 px clip), so each experiment renders a pool once and samples batches of
views from it; the unified and decoupled runs of a scenario share one pool.
"""
from dataclasses import dataclass
from typing import Tuple

import numpy as np
import torch
from torch import Tensor

from mmbodvcl.datasets.synthetic import SyntheticVideoGenerator

# Map uint8 pixels to roughly zero mean and unit spread.
_PIXEL_MEAN, _PIXEL_STD = 127.5, 64.0


def to_model_input(clips: Tensor) -> Tensor:
    """uint8 ``(..., T, H, W, 3)`` -> float ``(..., 3, T, H, W)``."""
    clips = clips.float().sub_(_PIXEL_MEAN).div_(_PIXEL_STD)
    return clips.movedim(-1, -4).contiguous()


@dataclass
class ViewPool:
    """``views`` uint8 ``(N, K, T, H, W, 3)``: K jittered views of each of N
    clips; ``labels`` int64 ``(N, 4)`` ordered as ``SEMANTICS``."""
    views: Tensor
    labels: Tensor

    @classmethod
    def render(cls, generator: SyntheticVideoGenerator,
               views_per_clip: int) -> 'ViewPool':
        """Render ``views_per_clip`` views of every clip (canonical clip when
        ``views_per_clip == 1``, the evaluation setting)."""
        if views_per_clip == 1:
            clips = [[generator.clip(i)] for i in range(generator.num_samples)]
        else:
            clips = [
                generator.views(i, views_per_clip)
                for i in range(generator.num_samples)
            ]
        return cls(torch.from_numpy(np.asarray(clips)),
                   torch.from_numpy(generator.labels))

    def __len__(self) -> int:
        return self.views.shape[0]

    def sample(self, batch_size: int, num_views: int,
               rng: torch.Generator) -> Tuple[Tensor, Tensor]:
        """A batch of distinct clips and ``num_views`` distinct views each.

        Returns:
            ``(views float (num_views, B, 3, T, H, W), labels (B, 4))``.
        """
        if num_views > self.views.shape[1]:
            raise ValueError(f'asked for {num_views} views per clip, the pool '
                             f'holds {self.views.shape[1]}')
        clips = torch.randperm(len(self), generator=rng)[:batch_size]
        which = torch.argsort(
            torch.rand(len(clips), self.views.shape[1], generator=rng),
            dim=1)[:, :num_views]
        batch = self.views[clips[:, None], which]  # (B, V, T, H, W, 3)
        return to_model_input(batch.transpose(0, 1)), self.labels[clips]

    def canonical(self) -> Tensor:
        """The first view of every clip, float ``(N, 3, T, H, W)``."""
        return to_model_input(self.views[:, 0])
