"""Grad-CAM of a pretrained backbone on one clip (paper Fig. 8).

Reuses MMAction2's ``mmaction.utils.GradCAM``, which needs a
``Recognizer3D``:

* with a recognizer config (e.g. a finetuned ``configs/downstream`` model) the
  recognizer and its classifier are used as they are, and the score explained
  is the top class;
* with a pretraining config (``configs/bodvcl``, ``configs/baselines``) the
  checkpoint's ``backbone.*`` weights are loaded, strictly, into a stock
  ``Recognizer3D`` with the same backbone, and the head is an ``I3DHead``
  whose linear layer is the identity: the score explained is the strongest
  channel of the spatio-temporally pooled feature, since a self-supervised
  backbone has no classes.

Writes ``gradcam_<video>.png``: the input frames (top row) and the Grad-CAM
heat map blended over them (bottom row). Paper Fig. 8 is two runs of this
tool, one per pretrained model, on the same clip.

Example::

    python tools/analysis/gradcam.py configs/bodvcl/vsimclr_slowr50_k400.py \\
        work_dirs/vsimclr/epoch_200.pth data/diving48/videos/xyz.mp4 \\
        --out-dir work_dirs/fig8/bodvcl
"""
import argparse
import os
import os.path as osp
from typing import List, Optional, Sequence

import torch
from mmengine.config import Config
from mmengine.model import revert_sync_batchnorm

import mmbodvcl  # noqa: F401,E402  (stack fixes before mmaction.models)
from mmaction.models import Recognizer3D
from mmaction.registry import MODELS
from mmaction.utils import GradCAM
from mmbodvcl.apis import load_backbone_state_dict
from mmbodvcl.apis.analysis import (analysis_parser, plt, save_figure,
                                    build_clip_pipeline, build_normaliser,
                                    clip_tensor, load_clip, load_config,
                                    load_model, short_name)


def recognizer_from_pretraining(cfg: Config, checkpoint: str,
                                clip: torch.Tensor) -> Recognizer3D:
    """A stock ``Recognizer3D`` around the pretrained backbone, with an
    identity classifier over the pooled feature channels.

    Args:
        clip: a normalised clip ``(1, 3, T, H, W)``, to size the classifier.
    """
    backbone_cfg = cfg.model.backbone.copy()
    backbone_cfg.pop('pretrained', None)
    recognizer = MODELS.build(
        dict(type='Recognizer3D',
             backbone=backbone_cfg,
             data_preprocessor=dict(
                 type='ActionDataPreprocessor',
                 mean=cfg.model.data_preprocessor.get('mean'),
                 std=cfg.model.data_preprocessor.get('std'),
                 format_shape='NCTHW')))
    recognizer.backbone.load_state_dict(load_backbone_state_dict(checkpoint),
                                        strict=True)
    recognizer = revert_sync_batchnorm(recognizer).eval()
    with torch.no_grad():
        feats = recognizer.backbone(clip)
    if not isinstance(feats, torch.Tensor) or feats.dim() != 5:
        shape = tuple(feats.shape) if isinstance(
            feats, torch.Tensor) else type(feats).__name__
        raise ValueError(
            'Grad-CAM needs a spatio-temporal feature map (N, C, T, h, w); '
            f'backbone {backbone_cfg["type"]} returns {shape}')
    channels = feats.shape[1]
    recognizer.cls_head = MODELS.build(
        dict(type='I3DHead', num_classes=channels, in_channels=channels,
             spatial_type='avg', dropout_ratio=0.0, average_clips='score'))
    with torch.no_grad():
        recognizer.cls_head.fc_cls.weight.copy_(torch.eye(channels))
        recognizer.cls_head.fc_cls.bias.zero_()
    return recognizer


def plot_gradcam(frames: torch.Tensor, blended: torch.Tensor, title: str,
                 path: str) -> None:
    """Args: frames, blended: ``(T, H, W, 3)`` in [0, 1]."""
    num_frames = frames.shape[0]
    fig, axes = plt.subplots(2, num_frames, squeeze=False,
                             figsize=(1.6 * num_frames, 3.6))
    for t in range(num_frames):
        for row, images in enumerate((frames, blended)):
            axes[row, t].imshow(images[t].clamp(0, 1).numpy())
            axes[row, t].axis('off')
        axes[0, t].set_title(f't={t}', fontsize=8)
    fig.suptitle(title, fontsize=9)
    save_figure(fig, path)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = analysis_parser(__doc__)
    parser.add_argument('video', help='video file')
    parser.add_argument(
        '--target-layer-name', default='backbone',
        help="layer whose activations are explained, '/'-separated as in "
        "MMAction2's vis_cam.py (default: the backbone's output)")
    parser.add_argument('--alpha', type=float, default=0.5,
                        help='opacity of the heat map')
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Run the tool; returns the paths it wrote."""
    args = parse_args(argv)
    if not osp.isfile(args.video):
        raise FileNotFoundError(f'video {args.video!r} does not exist')
    if not 0 <= args.alpha <= 1:
        raise ValueError(f'--alpha must be in [0, 1], got {args.alpha}')
    cfg = load_config(args.config, args.cfg_options)
    pipeline = build_clip_pipeline(args.clip_len, args.frame_interval,
                                   args.short_side, args.crop_size)
    if cfg.model.get('type') == 'Recognizer3D':
        recognizer = load_model(cfg, args.checkpoint, args.device)
        explained = 'top class score'
    else:
        clip = clip_tensor(args.video, pipeline, build_normaliser(cfg), 'cpu')
        recognizer = recognizer_from_pretraining(
            cfg, args.checkpoint, clip).to(args.device)
        explained = 'strongest pooled feature channel'

    data = load_clip(args.video, pipeline)
    gradcam = GradCAM(recognizer, args.target_layer_name)
    blended, _ = gradcam(data, alpha=args.alpha)  # (1, T, H, W, 3)
    frames = data['inputs'][0][0].permute(1, 2, 3, 0).float() / 255.
    os.makedirs(args.out_dir, exist_ok=True)
    path = osp.join(args.out_dir, f'gradcam_{short_name(args.video)}.png')
    plot_gradcam(frames, blended[0].float(),
                 f'{osp.basename(args.video)}: Grad-CAM of the {explained}',
                 path)
    print(f'wrote {path}')
    return [path]


if __name__ == '__main__':
    main()
