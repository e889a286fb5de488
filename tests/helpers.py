"""What the tests share: small real videos and annotation files, the
pretraining pipeline of ``configs/``, configs of MMAction2's wheel, free
ports, ``tools/`` scripts as modules, the environment of the launchers.

Videos are written by OpenCV (``mp4v``) and decoded by decord like any user
video; nothing here mocks the decoding stack. This module reads files of the
source checkout (``configs/``, ``tools/``), so it lives with the tests, not
in the installed package; the benchmarks import it through
``benchmarks/checkout.py``.
"""
import importlib.util
import os
import os.path as osp
import socket
import sys
from contextlib import contextmanager
from types import ModuleType
from typing import Dict, Iterator, List, Optional, Sequence

import cv2
import numpy as np
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.utils import get_installed_path

from mmbodvcl.apis.runner_cli import process_group_closed_at_exit
from mmbodvcl.datasets.video_writer import write_video


def make_video(path: str,
               num_frames: int = 24,
               size: Sequence[int] = (48, 64),
               fps: int = 8,
               seed: int = 0) -> str:
    """Write a colour video with a moving square and a brightness ramp.

    Args:
        path: Output file, ``.mp4``.
        num_frames: Number of frames.
        size: ``(height, width)`` in pixels.
        fps: Frames per second written into the container.
        seed: Controls the colours and the motion, so videos differ.

    Returns:
        ``path``.
    """
    height, width = size
    rng = np.random.default_rng(seed)
    background = rng.integers(40, 200, size=3)
    colour = rng.integers(0, 256, size=3).tolist()
    side = max(4, min(height, width) // 4)
    velocity = rng.integers(1, 4, size=2)
    frames = []
    for t in range(num_frames):
        shade = np.clip(background + 2 * t, 0, 255).astype(np.uint8)
        frame = np.empty((height, width, 3), np.uint8)
        frame[:] = shade
        y = int(velocity[0] * t) % max(1, height - side)
        x = int(velocity[1] * t) % max(1, width - side)
        cv2.rectangle(frame, (x, y), (x + side, y + side), colour, -1)
        frames.append(frame)
    write_video(path, frames, fps)
    return path


def make_video_dataset(root: str,
                       num_videos: int = 4,
                       num_classes: int = 2,
                       num_frames: int = 24,
                       size: Sequence[int] = (48, 64),
                       ann_name: str = 'ann.txt',
                       seed: int = 0) -> str:
    """Write ``num_videos`` videos under ``root`` and an MMAction2
    ``VideoDataset`` annotation file (``relative/path label`` lines).

    Returns:
        The annotation file's path; use ``data_prefix=dict(video=root)``.
    """
    lines: List[str] = []
    for index in range(num_videos):
        name = f'video_{index:03d}.mp4'
        make_video(osp.join(root, name), num_frames=num_frames, size=size,
                   seed=seed + index)
        lines.append(f'{name} {index % num_classes}')
    ann_file = osp.join(root, ann_name)
    with open(ann_file, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return ann_file


def make_solid_colour_dataset(root: str,
                              colours: Sequence[Sequence[int]],
                              videos_per_class: Sequence[int],
                              ann_name: str = 'ann.txt',
                              num_frames: int = 16,
                              size: Sequence[int] = (32, 32),
                              jitter: int = 8,
                              seed: int = 0) -> str:
    """Videos whose class is their colour: class ``c`` has
    ``videos_per_class[c]`` constant videos of ``colours[c]`` (BGR), each
    shifted by its own offset in ``[-jitter, jitter]`` per channel, and an
    annotation file of ``relative/path label`` lines.

    Returns:
        The annotation file's path; use ``data_prefix=dict(video=root)``.
    """
    if len(colours) != len(videos_per_class):
        raise ValueError(f'{len(colours)} colours for '
                         f'{len(videos_per_class)} classes')
    rng = np.random.default_rng(seed)
    lines: List[str] = []
    for label, (colour, count) in enumerate(zip(colours, videos_per_class)):
        for index in range(count):
            shade = np.clip(
                np.asarray(colour) + rng.integers(-jitter, jitter + 1, 3), 0,
                255).astype(np.uint8)
            frame = np.broadcast_to(shade, (*size, 3)).copy()
            name = f'{osp.splitext(ann_name)[0]}_{label}_{index:03d}.mp4'
            write_video(osp.join(root, name), [frame] * num_frames)
            lines.append(f'{name} {label}')
    ann_file = osp.join(root, ann_name)
    with open(ann_file, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    return ann_file


#: The pretraining data config: the only copy of the multi-view
#: pretraining pipeline.
PRETRAIN_DATA_CONFIG = osp.join(
    osp.dirname(osp.dirname(osp.abspath(__file__))), 'configs', '_base_',
    'datasets', 'k400_multiview_8x8.py')


def multiview_pretrain_pipeline(num_views: int = 2,
                                clip_len: int = 8,
                                frame_interval: int = 8,
                                size: int = 224) -> List[Dict]:
    """The pretraining pipeline of ``configs/_base_/datasets/
    k400_multiview_8x8.py`` (config dicts), with its sampler and its
    fixed-size ``Resize`` set to the arguments, for tests, benchmarks and
    scripts. Use with :class:`MultiViewVideoDataset` and
    ``MultiViewDataPreprocessor`` in the ``mmaction`` default scope.
    """
    pipeline = Config.fromfile(PRETRAIN_DATA_CONFIG).to_dict()[
        'train_pipeline']
    sampler = _the_transform(pipeline, 'MultiViewSampleFrames')
    sampler.update(clip_len=clip_len, frame_interval=frame_interval,
                   num_views=num_views)
    augment = _the_transform(pipeline, 'MultiViewAugment')
    _the_transform(augment['transforms'], 'Resize')['scale'] = (size, size)
    return pipeline


def _the_transform(pipeline: List[Dict], type_name: str) -> Dict:
    found = [t for t in pipeline if t['type'] == type_name]
    if len(found) != 1:
        raise ValueError(f'{PRETRAIN_DATA_CONFIG}: expected one {type_name} '
                         f'in the pipeline, found {len(found)}')
    return found[0]


def make_corrupt_video(path: str, content: Optional[bytes] = None) -> str:
    """Write a file with an ``.mp4`` name that is not a decodable video."""
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    with open(path, 'wb') as f:
        f.write(content if content is not None else b'not a video' * 64)
    return path


def mmaction_config_path(relative_path: str) -> str:
    """Path of a config shipped in MMAction2's wheel
    (``mmaction/.mim/configs``), the folder MMEngine resolves
    ``_base_ = 'mmaction::...'`` against."""
    return osp.join(get_installed_path('mmaction'), '.mim', 'configs',
                    relative_path)


def mmaction_config(relative_path: str) -> Config:
    """Load a config shipped in MMAction2's wheel, e.g.
    ``'recognition/slowonly/'
    'slowonly_r50_8xb16-4x16x1-256e_kinetics400-rgb.py'``."""
    return Config.fromfile(mmaction_config_path(relative_path))


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free now (for gloo process groups and
    launches in tests)."""
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


@contextmanager
def gloo_rank(rank: int, world_size: int, port: int) -> Iterator[None]:
    """Run the body as rank ``rank`` of a job on 127.0.0.1 (the environment
    of ``launcher='pytorch'`` and of ``init_process_group('gloo')``; one
    thread a rank), and close the process group the body opens (by a Runner
    or by hand) when it ends, as ``tools/train.py`` does: left to
    interpreter exit, gloo now and then aborts a finished rank."""
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
        MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    with process_group_closed_at_exit():
        yield


def load_script(path: str) -> ModuleType:
    """Import a script of ``tools/`` (not a package) as a module, to call
    its ``main`` or helpers from a test."""
    name = 'mmbodvcl_script_' + osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def launcher_env(**variables: str) -> Dict[str, str]:
    """The environment for running ``tools/*.sh`` from a test: these scripts
    call ``python`` as MMAction2's do, so the directory of this interpreter
    (``.venv/bin``) goes first on ``PATH``, as ``source .venv/bin/activate``
    does for a user."""
    path = os.pathsep.join([osp.dirname(sys.executable), os.environ['PATH']])
    return dict(os.environ, PATH=path, **variables)


class LossRecorder(Hook):
    """Keeps the log variables of every training iteration
    (``history``: one ``{name: float}`` per iteration)."""

    def __init__(self) -> None:
        self.history: List[Dict[str, float]] = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.history.append({k: float(v) for k, v in outputs.items()})
