"""The encoder of a pretraining checkpoint, for stock MMAction2 models."""
from typing import Dict

import torch
from mmengine.runner import CheckpointLoader


def extract_backbone(state_dict: Dict[str, torch.Tensor], prefix: str,
                     source: str) -> Dict[str, torch.Tensor]:
    """Keys of ``state_dict`` under ``prefix``, with the prefix removed.

    Args:
        state_dict: Model state dict.
        prefix: Prefix of the encoder keys, ending with a dot.
        source: Where ``state_dict`` comes from, for error messages.

    Raises:
        ValueError: if no key starts with ``prefix``; the message lists the
            top-level prefixes there are.
    """
    backbone = {
        key[len(prefix):]: value
        for key, value in state_dict.items() if key.startswith(prefix)
    }
    if not backbone:
        found = sorted({key.split('.', 1)[0] for key in state_dict})
        raise ValueError(
            f'{source}: no key starts with {prefix!r}, so there is no '
            f'backbone to extract; its top-level key prefixes are {found}. '
            f'Pass the right one as the prefix (tools/extract_backbone.py '
            f'--prefix).')
    return backbone


def load_backbone_state_dict(checkpoint: str,
                             prefix: str = 'backbone.'
                             ) -> Dict[str, torch.Tensor]:
    """The encoder weights (keys without ``prefix``) of a checkpoint file:
    an mmbodvcl pretraining checkpoint (``backbone.*`` is the online
    encoder) or an MMAction2 recognizer checkpoint.

    Raises:
        ValueError: naming the checkpoint, for a prefix without a final dot
            or a checkpoint without such keys.
        TypeError: if the file holds no state dict.
    """
    if not prefix.endswith('.'):
        raise ValueError(f'prefix must end with a dot, got {prefix!r}')
    loaded = CheckpointLoader.load_checkpoint(checkpoint, map_location='cpu')
    state_dict = loaded.get('state_dict', loaded)
    if not isinstance(state_dict, dict):
        raise TypeError(f'{checkpoint}: expected a dict of tensors (or '
                        f'one under "state_dict"), got '
                        f'{type(state_dict).__name__}')
    return extract_backbone(state_dict, prefix, checkpoint)
