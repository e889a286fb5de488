"""Writing frames as a video that decord (and MMAction2's pipelines) read
back: OpenCV's ``mp4v`` codec in an ``.mp4`` container."""
import os
import os.path as osp
from typing import Sequence

import cv2
import numpy as np


def write_video(path: str,
                frames: Sequence[np.ndarray],
                fps: float = 8,
                rgb: bool = False) -> str:
    """Write ``(H, W, 3)`` uint8 frames as an ``mp4v`` video.

    Args:
        path: Output file, ``.mp4``; its folder is created.
        frames: The frames, BGR (OpenCV's order) or RGB when ``rgb``.
        fps: Frames per second written into the container.
        rgb: The frames are RGB (as decord decodes them).

    Returns:
        ``path``.

    Raises:
        OSError: OpenCV cannot open ``path`` for writing.
    """
    height, width = frames[0].shape[:2]
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'mp4v'), fps,
                             (width, height))
    if not writer.isOpened():
        raise OSError(f'OpenCV could not open {path!r} for writing')
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
                         if rgb else frame)
    finally:
        writer.release()
    return path
