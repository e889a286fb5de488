"""Loading shared by the analysis tools (tools/analysis/): model +
checkpoint, video lists and single-clip inputs.

Every tool takes a config (a pretraining config of ``configs/bodvcl`` /
``configs/baselines`` or an MMAction2 recognizer config) and a checkpoint, and
reads videos the way MMAction2's test pipelines do (decord, one centre clip).
"""
import argparse
import os.path as osp
from typing import Callable, Dict, List, Optional, Tuple

import matplotlib
import torch
from mmengine.config import Config, DictAction
from mmengine.dataset import Compose, pseudo_collate
from mmengine.model import revert_sync_batchnorm
from mmengine.registry import init_default_scope
from torch import nn

from mmaction.apis import init_recognizer
from mmaction.registry import MODELS

matplotlib.use('Agg')  # the tools write files, no display
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402


def analysis_parser(doc: str) -> argparse.ArgumentParser:
    """A parser described by the first line of ``doc`` (a tool's module
    docstring) with the arguments every analysis tool shares."""
    parser = argparse.ArgumentParser(description=doc.split('\n')[0])
    parser.add_argument('config', help='config file of the model')
    parser.add_argument('checkpoint', help='checkpoint file of the model')
    parser.add_argument('--out-dir', required=True,
                        help='folder the figures and tables are written to')
    parser.add_argument('--clip-len', type=int, default=8,
                        help='frames per clip (8 for Slow-R50 8x8)')
    parser.add_argument('--frame-interval', type=int, default=8,
                        help='temporal stride between sampled frames')
    parser.add_argument('--short-side', type=int, default=256,
                        help='frames are resized to this short side first')
    parser.add_argument('--crop-size', type=int, default=224,
                        help='side of the centre crop fed to the model')
    parser.add_argument('--device', default='cpu', help='e.g. cpu, cuda:0')
    parser.add_argument(
        '--cfg-options', nargs='+', action=DictAction, default={},
        help='override config entries, key=value as in tools/train.py')
    return parser


def save_figure(fig: Figure, path: str) -> None:
    """Lay out ``fig``, write it to ``path`` (PNG, 120 dpi) and close it."""
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    if not osp.isfile(path):
        raise FileNotFoundError(f'config file {path!r} does not exist')
    cfg = Config.fromfile(path)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmaction'))
    return cfg


def load_model(cfg: Config, checkpoint: str, device: str) -> nn.Module:
    """Build ``cfg.model``, load ``checkpoint`` and switch to eval mode.

    SyncBN layers are reverted to BN: the tools run in one process.
    """
    if not osp.isfile(checkpoint):
        raise FileNotFoundError(f'checkpoint {checkpoint!r} does not exist')
    if 'backbone' not in cfg.model:
        raise KeyError(f'config model {cfg.model.get("type")!r} has no '
                       '"backbone" entry; the analysis tools need one')
    model = init_recognizer(cfg, checkpoint, device='cpu')
    model = revert_sync_batchnorm(model).to(device)
    model.eval()
    return model


def read_video_list(video_list: str, data_root: str = '') -> List[str]:
    """Video paths from an MMAction2 ``VideoDataset`` annotation file
    (``path label`` lines; the label is ignored) or a plain list of paths.

    Raises:
        FileNotFoundError: naming the line of a video that does not exist.
        ValueError: if the list holds no video.
    """
    if not osp.isfile(video_list):
        raise FileNotFoundError(f'video list {video_list!r} does not exist')
    videos = []
    with open(video_list, encoding='utf-8') as f:
        for line_no, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            path = osp.join(data_root, fields[0])
            if not osp.isfile(path):
                raise FileNotFoundError(
                    f'{video_list}:{line_no}: video {path!r} does not exist '
                    f'(data root {data_root!r})')
            videos.append(path)
    if not videos:
        raise ValueError(f'video list {video_list!r} names no video')
    return videos


def build_clip_pipeline(clip_len: int, frame_interval: int, short_side: int,
                        crop_size: int) -> Compose:
    """MMAction2's single centre clip test pipeline (decord decoding)."""
    return Compose([
        dict(type='DecordInit'),
        dict(type='SampleFrames', clip_len=clip_len,
             frame_interval=frame_interval, num_clips=1, test_mode=True),
        dict(type='DecordDecode'),
        dict(type='Resize', scale=(-1, short_side)),
        dict(type='CenterCrop', crop_size=crop_size),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs'),
    ])


def build_normaliser(cfg: Config) -> nn.Module:
    """A stock ``ActionDataPreprocessor`` with the config's mean and std
    (pretraining models carry a multi-view preprocessor; the tools feed a
    single clip)."""
    preprocessor = cfg.model.get('data_preprocessor', {})
    return MODELS.build(
        dict(type='ActionDataPreprocessor',
             mean=preprocessor.get('mean'),
             std=preprocessor.get('std'),
             format_shape='NCTHW'))


def load_clip(path: str, pipeline: Compose) -> Dict:
    """One packed clip of ``path``, collated as a batch of one video:
    ``inputs`` is a list holding a ``uint8`` tensor ``(1, 3, T, H, W)``."""
    data = pipeline(dict(filename=path, label=-1, start_index=0,
                         modality='RGB'))
    return pseudo_collate([data])


def clip_tensor(path: str, pipeline: Compose, normaliser: nn.Module,
                device: str) -> torch.Tensor:
    """Normalised float clip ``(1, 3, T, H, W)`` of ``path``."""
    data = normaliser(load_clip(path, pipeline), training=False)
    inputs = data['inputs']  # (1, num_clips=1, 3, T, H, W)
    return inputs.flatten(0, 1).to(device)


def load_inputs(args: argparse.Namespace
                ) -> Tuple[Config, nn.Module, Callable[[str], torch.Tensor]]:
    """What a tool parsed by :func:`analysis_parser` works on: the config,
    the model with its checkpoint, and ``video path -> clip tensor``
    (normalised, on ``args.device``)."""
    cfg = load_config(args.config, args.cfg_options)
    model = load_model(cfg, args.checkpoint, args.device)
    normaliser = build_normaliser(cfg)
    pipeline = build_clip_pipeline(args.clip_len, args.frame_interval,
                                   args.short_side, args.crop_size)
    return cfg, model, lambda path: clip_tensor(path, pipeline, normaliser,
                                                args.device)


def short_name(path: str) -> str:
    """File name without folder and extension, safe for output names."""
    stem = osp.splitext(osp.basename(path))[0]
    return ''.join(c if c.isalnum() or c in '-_' else '_' for c in stem)
