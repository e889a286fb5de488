"""Turn a BOD-VCL pretraining checkpoint into one stock MMAction2 loads.

Two output formats:

* ``recognizer`` (default): keys ``backbone.*`` only, for a top-level
  ``load_from=OUT`` in any recognition or AVA config (our downstream configs
  take it this way);
* ``backbone``: keys without the ``backbone.`` prefix, for
  ``model.backbone.pretrained=OUT`` of stock ``ResNet3d`` configs.

Example::

    python tools/extract_backbone.py work_dirs/vbyol/epoch_200.pth \\
        checkpoints/vbyol_bodvcl_r50.pth
"""
import argparse
import os
import os.path as osp
from typing import Dict

import torch
from mmengine.runner import CheckpointLoader

import mmbodvcl  # noqa: F401  (lets weights-only loading read MMEngine ckpts)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Extract the backbone of a pretraining checkpoint')
    parser.add_argument('checkpoint', help='pretraining checkpoint (.pth)')
    parser.add_argument('out', help='output checkpoint (.pth)')
    parser.add_argument(
        '--format',
        choices=['recognizer', 'backbone'],
        default='recognizer',
        help="'recognizer': keys backbone.* for load_from=; 'backbone': keys "
        'without the prefix for model.backbone.pretrained=')
    parser.add_argument(
        '--prefix',
        default='backbone.',
        help='prefix of the encoder keys in the pretraining checkpoint '
        '(default: backbone., the online encoder)')
    return parser.parse_args()


def extract_backbone(state_dict: Dict[str, torch.Tensor], prefix: str,
                     source: str) -> Dict[str, torch.Tensor]:
    """Keys of ``state_dict`` under ``prefix``, with the prefix removed."""
    backbone = {
        key[len(prefix):]: value
        for key, value in state_dict.items() if key.startswith(prefix)
    }
    if not backbone:
        found = sorted({key.split('.', 1)[0] for key in state_dict})
        raise ValueError(
            f'{source}: no key starts with {prefix!r}, so there is no '
            f'backbone to extract; its top-level key prefixes are {found}. '
            f'Pass the right one with --prefix.')
    return backbone


def main() -> None:
    args = parse_args()
    if not args.prefix.endswith('.'):
        raise ValueError(f'--prefix must end with a dot, got {args.prefix!r}')
    checkpoint = CheckpointLoader.load_checkpoint(
        args.checkpoint, map_location='cpu')
    state_dict = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state_dict, dict):
        raise TypeError(f'{args.checkpoint}: expected a dict of tensors (or '
                        f'one under "state_dict"), got '
                        f'{type(state_dict).__name__}')
    backbone = extract_backbone(state_dict, args.prefix, args.checkpoint)
    if args.format == 'recognizer':
        backbone = {f'backbone.{key}': value for key, value in backbone.items()}
    out_dir = osp.dirname(osp.abspath(args.out))
    os.makedirs(out_dir, exist_ok=True)
    torch.save(
        dict(
            state_dict=backbone,
            meta=dict(source=osp.abspath(args.checkpoint),
                      format=args.format)), args.out)
    print(f'{len(backbone)} backbone tensors from {args.checkpoint} written '
          f'to {args.out} ({args.format} format)')


if __name__ == '__main__':
    main()
