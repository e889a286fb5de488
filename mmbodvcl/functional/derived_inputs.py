"""Inputs derived from a clip that carry only its static or only its dynamic
content, for decoupling by input (the two-stream experiment of the BOD-VCL
paper, and the Static and Dynamic Concepts method).

Pure PyTorch; clips are ``(B, C, T, H, W)`` float tensors.
"""
import torch
from torch import Tensor

# ITU-R BT.601 luma weights: differences of grey frames carry motion and the
# change of brightness, not the colour of a static background.
_LUMA = (0.299, 0.587, 0.114)


def _check_clips(clips: Tensor, min_frames: int) -> None:
    if not isinstance(clips, Tensor) or clips.dim() != 5:
        shape = tuple(clips.shape) if isinstance(clips, Tensor) else type(
            clips).__name__
        raise ValueError(f'clips must be (B, C, T, H, W), got {shape}')
    if clips.shape[2] < min_frames:
        raise ValueError(f'clips have T={clips.shape[2]} frames, need at '
                         f'least {min_frames}')


def static_frame_clip(clips: Tensor, frame_index: Tensor) -> Tensor:
    """One frame of each clip repeated over time: appearance without motion.

    Args:
        clips: ``(B, C, T, H, W)``.
        frame_index: ``(B,)`` integer index of the frame kept for each clip.

    Returns:
        ``(B, C, T, H, W)`` whose frames all equal frame ``frame_index[b]``.
    """
    _check_clips(clips, 1)
    num_frames = clips.shape[2]
    if frame_index.shape != (clips.shape[0], ) or not (
            (frame_index >= 0) & (frame_index < num_frames)).all():
        raise ValueError(f'frame_index must be ({clips.shape[0]},) indices '
                         f'in [0, {num_frames}), got {frame_index.tolist()}')
    index = frame_index.to(clips.device).view(-1, 1, 1, 1, 1).expand(
        -1, clips.shape[1], 1, *clips.shape[3:])
    return clips.gather(2, index).expand_as(clips)


def frame_difference_clip(clips: Tensor, grayscale: bool = False) -> Tensor:
    """Differences of adjacent frames, ``x_{t+1} - x_t``: motion without
    appearance.

    Args:
        clips: ``(B, C, T, H, W)``, ``T >= 2``.
        grayscale: Take the differences of grey (luma) frames, replicated to
            C channels, so that a constant colour leaves no trace (needs
            C = 3).

    Returns:
        ``(B, C, T - 1, H, W)``.
    """
    _check_clips(clips, 2)
    if grayscale:
        if clips.shape[1] != 3:
            raise ValueError('grayscale frame differences need C = 3 (RGB), '
                             f'got C={clips.shape[1]}')
        luma = clips.new_tensor(_LUMA).view(1, 3, 1, 1, 1)
        clips = (clips * luma).sum(1, keepdim=True).expand(-1, 3, -1, -1, -1)
    return clips[:, :, 1:] - clips[:, :, :-1]


def draw_frame_index(clips: Tensor, mode: str,
                     generator: torch.Generator = None) -> Tensor:
    """``(B,)`` frame indices for :func:`static_frame_clip`: ``'random'``
    (uniform per clip), ``'first'`` or ``'middle'``."""
    batch, num_frames = clips.shape[0], clips.shape[2]
    if mode == 'random':
        return torch.randint(num_frames, (batch, ), generator=generator)
    if mode == 'first':
        return torch.zeros(batch, dtype=torch.long)
    if mode == 'middle':
        return torch.full((batch, ), num_frames // 2, dtype=torch.long)
    raise ValueError(f"static frame mode {mode!r}: expected 'random', "
                     "'first' or 'middle'")
