"""Build Static UCF-101 and Dynamic UCF-101 (BOD-VCL paper, section 3.2).

* ``static``: every video becomes its middle frame repeated for as many
  frames as the original has; motion is removed, appearance kept. Written as
  ``.mp4`` videos (constant frames survive compression) with a
  ``VideoDataset`` list ``<rel>.mp4 <label>``.
* ``dynamic`` (after Ilic et al., "Is appearance free action recognition
  possible?", ECCV 2022): a uniform noise frame is warped recursively by the
  optical flow of the original video, so motion is kept and appearance
  removed. Noise does not survive lossy codecs, so frames are written as
  lossless PNG rawframes ``<rel>/img_00001.png`` with a ``RawframeDataset``
  list ``<rel> <num_frames> <label>``.

Optical flow: OpenCV's DIS (default, CPU) or RAFT (``--flow raft``, needs a
working torchvision; the paper's choice).

Example (every split of UCF-101, see docs/datasets.md)::

    python tools/data/build_static_dynamic_ucf.py dynamic \\
        --video-root data/ucf101/videos --out-root data/ucf101_dynamic \\
        --ann-files data/ucf101/ucf101_{train,val}_split_1_videos.txt
"""
import argparse
import os
import os.path as osp
import zlib
from typing import Callable, Dict, List, Tuple

import cv2
import decord
import numpy as np

from mmbodvcl.datasets.video_writer import write_video

# (previous RGB frame, next RGB frame) -> flow (H, W, 2) as (dx, dy) with
# previous(p) ~ next(p + flow(p))
FlowFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Build Static / Dynamic UCF-101 from UCF-101 videos')
    parser.add_argument('mode', choices=['static', 'dynamic'])
    parser.add_argument('--video-root', required=True,
                        help='root of the source videos (data/ucf101/videos)')
    parser.add_argument('--ann-files', nargs='+', required=True,
                        help='VideoDataset lists "<rel path> <label>"')
    parser.add_argument('--out-root', required=True)
    parser.add_argument('--flow', choices=['dis', 'raft'], default='dis',
                        help='optical flow for the dynamic mode')
    parser.add_argument('--seed', type=int, default=0,
                        help='seed of the noise (mixed with each video path)')
    return parser.parse_args()


def read_video_list(ann_file: str) -> List[Tuple[str, str]]:
    """``(relative path, label)`` pairs of a ``VideoDataset`` list."""
    entries = []
    with open(ann_file, encoding='utf-8') as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                raise ValueError(
                    f'{ann_file}:{line_no}: expected "<video path> <label>", '
                    f'got {line.strip()!r}')
            entries.append((parts[0], parts[1]))
    return entries


def read_frames(path: str) -> np.ndarray:
    """All frames of a video, ``(T, H, W, 3)`` uint8 RGB, decoded by decord."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'video not found: {path}')
    try:
        reader = decord.VideoReader(path, num_threads=1)
        frames = reader.get_batch(list(range(len(reader)))).asnumpy()
    except decord.DECORDError as error:
        raise RuntimeError(
            f'decord could not decode {path}: {error}') from None

    if len(frames) == 0:
        raise ValueError(f'{path} has no frames')
    return frames


def static_frames(frames: np.ndarray) -> np.ndarray:
    """The middle frame repeated for every frame, ``(T, H, W, 3)``."""
    return np.repeat(frames[len(frames) // 2][None], len(frames), axis=0)


def dis_flow() -> FlowFn:
    """OpenCV's DIS optical flow on grey levels."""
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)

    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        return dis.calc(
            cv2.cvtColor(prev, cv2.COLOR_RGB2GRAY),
            cv2.cvtColor(nxt, cv2.COLOR_RGB2GRAY), None)

    return flow


def raft_flow() -> FlowFn:
    """torchvision's RAFT-large (the paper's flow); needs torchvision."""
    try:
        import torch
        import torch.nn.functional as F
        from torchvision.models.optical_flow import (Raft_Large_Weights,
                                                     raft_large)
    except Exception as error:  # CUDA-only wheels fail with other errors too
        raise RuntimeError(
            f'--flow raft needs a working torchvision ({error}); use the '
            f'default --flow dis on machines without one') from error
    device = 'cuda' if torch.cuda.is_available() else 'cpu'
    weights = Raft_Large_Weights.DEFAULT
    model = raft_large(weights=weights).eval().to(device)
    preprocess = weights.transforms()

    @torch.no_grad()
    def flow(prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
        height, width = prev.shape[:2]
        # RAFT needs sides divisible by 8.
        pad = (0, -width % 8, 0, -height % 8)
        pair = [
            F.pad(torch.from_numpy(img).permute(2, 0, 1)[None].float(), pad,
                  mode='replicate').to(torch.uint8) for img in (prev, nxt)
        ]
        img1, img2 = preprocess(*pair)
        estimate = model(img1.to(device), img2.to(device))[-1]
        return estimate[0, :, :height, :width].permute(1, 2, 0).cpu().numpy()

    return flow


def dynamic_frames(frames: np.ndarray, flow_fn: FlowFn,
                   rng: np.random.Generator) -> np.ndarray:
    """Noise moved by the flow of ``frames``, ``(T, H, W, 3)`` uint8.

    Frame ``t`` is frame ``t-1`` warped backwards along the flow from source
    frame ``t`` to ``t-1``; nearest-neighbour sampling keeps the noise from
    blurring over time, and pixels whose source lies outside the image
    (disocclusions at the border) get fresh noise.
    """
    num_frames, height, width = frames.shape[:3]
    if num_frames < 2:
        raise ValueError(f'a dynamic clip needs at least 2 frames, got '
                         f'{num_frames}')
    grid_y, grid_x = np.mgrid[0:height, 0:width].astype(np.float32)
    noise = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
    out = [noise]
    for t in range(1, num_frames):
        backward = flow_fn(frames[t], frames[t - 1])
        map_x = grid_x + backward[..., 0]
        map_y = grid_y + backward[..., 1]
        noise = cv2.remap(noise, map_x, map_y, cv2.INTER_NEAREST,
                          borderMode=cv2.BORDER_CONSTANT)
        outside = ((map_x < -0.5) | (map_x > width - 0.5) | (map_y < -0.5) |
                   (map_y > height - 0.5))
        noise[outside] = rng.integers(
            0, 256, size=(int(outside.sum()), 3), dtype=np.uint8)
        out.append(noise)
    return np.stack(out)


def write_rawframes(directory: str, frames: np.ndarray) -> None:
    """Write RGB ``frames`` as lossless ``img_00001.png``, ... files."""
    os.makedirs(directory, exist_ok=True)
    for index, frame in enumerate(frames, 1):
        path = osp.join(directory, f'img_{index:05d}.png')
        if not cv2.imwrite(path, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)):
            raise OSError(f'OpenCV could not write {path}')


def video_fps(path: str) -> float:
    capture = cv2.VideoCapture(path)
    fps = capture.get(cv2.CAP_PROP_FPS)
    capture.release()
    return fps if fps > 0 else 25.0


def main() -> None:
    args = parse_args()
    flow_fn = (raft_flow() if args.flow == 'raft' else
               dis_flow()) if args.mode == 'dynamic' else None
    converted: Dict[str, str] = {}  # source rel path -> output list entry
    for ann_file in args.ann_files:
        lines = []
        for rel_path, label in read_video_list(ann_file):
            if rel_path not in converted:
                source = osp.join(args.video_root, rel_path)
                frames = read_frames(source)
                stem = osp.splitext(rel_path)[0]
                if args.mode == 'static':
                    write_video(
                        osp.join(args.out_root, 'videos', stem + '.mp4'),
                        static_frames(frames), video_fps(source), rgb=True)
                    converted[rel_path] = stem + '.mp4'
                else:
                    # One stream per video, so results do not depend on the
                    # order or subset of the lists converted.
                    rng = np.random.default_rng(
                        [args.seed, zlib.crc32(rel_path.encode())])
                    write_rawframes(
                        osp.join(args.out_root, 'rawframes', stem),
                        dynamic_frames(frames, flow_fn, rng))
                    converted[rel_path] = f'{stem} {len(frames)}'
            lines.append(f'{converted[rel_path]} {label}')
        name = osp.basename(ann_file)
        if args.mode == 'dynamic':
            name = name.replace('_videos', '_rawframes')
        out_ann = osp.join(args.out_root, name)
        os.makedirs(args.out_root, exist_ok=True)
        with open(out_ann, 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
        print(f'{len(lines)} {args.mode} entries written to {out_ann}')


if __name__ == '__main__':
    main()
