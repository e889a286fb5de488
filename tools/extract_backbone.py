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

import torch

from mmbodvcl.apis import load_backbone_state_dict


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


def main() -> None:
    args = parse_args()
    backbone = load_backbone_state_dict(args.checkpoint, args.prefix)
    if args.format == 'recognizer':
        backbone = {
            f'backbone.{key}': value
            for key, value in backbone.items()
        }
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
