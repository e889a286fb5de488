"""Multi-view clip sampling from one video with one decode.

The pretraining pipeline opens a video once (:class:`MultiViewDecordInit`),
places ``num_views`` clips at independent random temporal positions
(:class:`MultiViewSampleFrames`) and decodes the union of their frames with a
single ``VideoReader.get_batch`` call (:class:`MultiViewDecordDecode`). The
three are MMAction2's ``DecordInit`` / ``SampleFrames`` / ``DecordDecode``
roles; failures raise :class:`VideoReadError` naming the file, which
:class:`mmbodvcl.datasets.MultiViewVideoDataset` turns into its error policy.
"""
from typing import Dict, List, Tuple

import numpy as np
from mmcv.transforms import BaseTransform
from mmaction.datasets.transforms import DecordDecode, DecordInit
from mmaction.registry import TRANSFORMS


class VideoReadError(RuntimeError):
    """A video could not be opened or decoded, or cannot give the clips asked
    for. The message names the file."""


class VideoTooShortError(VideoReadError):
    """A video has fewer frames than one clip spans."""


def _decord_errors() -> Tuple[type, ...]:
    """What decord raises for a bad file: ``RuntimeError('Error reading
    ...')`` when the container does not open, ``DECORDError`` (not a
    ``RuntimeError``) when decoding fails."""
    # Imported lazily, as MMAction2's own Decord transforms do.
    from decord import DECORDError
    return RuntimeError, DECORDError


@TRANSFORMS.register_module()
class MultiViewDecordInit(DecordInit):
    """MMAction2's ``DecordInit`` whose failures name the video.

    A missing, unreadable or corrupt file, or a container that reports no
    frames, raises :class:`VideoReadError` with the file name instead of
    decord's bare message.

    Required keys: ``filename``. Added keys: ``video_reader``,
    ``total_frames``, ``avg_fps``.
    """

    def transform(self, results: Dict) -> Dict:
        filename = results['filename']
        try:
            results = super().transform(results)
        except (OSError, *_decord_errors()) as error:
            raise VideoReadError(
                f'cannot open video {filename!r} (expected a file decord can '
                f'read): {error}') from error
        if results['total_frames'] < 1:
            raise VideoReadError(
                f'video {filename!r} has no frames (decord reports '
                f'{results["total_frames"]}).')
        return results


@TRANSFORMS.register_module()
class MultiViewSampleFrames(BaseTransform):
    """Sample ``num_views`` clips of one video at independent random positions.

    Each view is ``clip_len`` frames, ``frame_interval`` apart, so it spans
    ``span = (clip_len - 1) * frame_interval + 1`` frames; its first frame is
    drawn uniformly from ``[0, total_frames - span]`` independently of the
    other views (views may overlap). A video shorter than ``span`` raises
    :class:`VideoTooShortError`: looping or repeating frames, MMAction2's
    choice for recognition, would fabricate jumps in the very dynamics
    BOD-VCL learns from.

    Required keys: ``total_frames``, ``filename``, ``start_index``
    (optional, default 0).
    Added keys: ``frame_inds`` (``(num_views * clip_len,)``, view-major),
    ``clip_len``, ``frame_interval``, ``num_clips`` (= ``num_views``).

    Args:
        clip_len: Frames per view (T).
        frame_interval: Stride between sampled frames.
        num_views: Views per video (the paper's rho).
    """

    def __init__(self,
                 clip_len: int,
                 frame_interval: int = 1,
                 num_views: int = 2) -> None:
        for name, value in (('clip_len', clip_len),
                            ('frame_interval', frame_interval),
                            ('num_views', num_views)):
            if not isinstance(value, int) or isinstance(value, bool) \
                    or value < 1:
                raise ValueError(f'MultiViewSampleFrames: {name} must be a '
                                 f'positive int, got {value!r}.')
        self.clip_len = clip_len
        self.frame_interval = frame_interval
        self.num_views = num_views
        self.span = (clip_len - 1) * frame_interval + 1

    def transform(self, results: Dict) -> Dict:
        total_frames = results['total_frames']
        if total_frames < self.span:
            raise VideoTooShortError(
                f'video {results["filename"]!r} has {total_frames} frames; '
                f'{self.num_views} views of {self.clip_len} frames at '
                f'interval {self.frame_interval} need at least {self.span}.')
        starts = np.random.randint(
            0, total_frames - self.span + 1, size=self.num_views)
        offsets = np.arange(self.clip_len) * self.frame_interval
        frame_inds = (starts[:, None] + offsets[None, :]).reshape(-1)
        results['frame_inds'] = frame_inds + results.get('start_index', 0)
        results['clip_len'] = self.clip_len
        results['frame_interval'] = self.frame_interval
        results['num_clips'] = self.num_views
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(clip_len={self.clip_len}, '
                f'frame_interval={self.frame_interval}, '
                f'num_views={self.num_views})')


@TRANSFORMS.register_module()
class MultiViewDecordDecode(DecordDecode):
    """Decode the frames of all views with one ``get_batch`` call.

    Views at independent positions overlap and come in no temporal order, so
    the frame indices are decoded as their sorted union (each frame once,
    seeking forwards only) and scattered back into view-major order. Frames
    of overlapping views are separate arrays, so in-place augmentation of one
    view never touches another. Decord's 'accurate' mode only: 'efficient'
    returns key frames in place of the frames asked for.

    Required keys: ``video_reader``, ``frame_inds``, ``filename``.
    Added keys: ``imgs`` (list of ``(H, W, 3)`` uint8 RGB frames),
    ``original_shape``, ``img_shape``.
    """

    def __init__(self) -> None:
        super().__init__(mode='accurate')

    def _decord_load_frames(self, container: object,
                            frame_inds: np.ndarray) -> List[np.ndarray]:
        unique_inds, positions = np.unique(frame_inds, return_inverse=True)
        frames = container.get_batch(unique_inds.tolist()).asnumpy()
        return list(frames[positions.reshape(-1)])

    def transform(self, results: Dict) -> Dict:
        filename = results['filename']
        try:
            return super().transform(results)
        except _decord_errors() as error:
            frame_inds = np.asarray(results['frame_inds'])
            raise VideoReadError(
                f'cannot decode frames {frame_inds.min()}..{frame_inds.max()}'
                f' of video {filename!r} ({results.get("total_frames")} '
                f'frames reported): {error}') from error

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}()'
