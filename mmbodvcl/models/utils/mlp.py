"""A multi-layer perceptron with named layers."""
import re
from collections import OrderedDict
from typing import List, Optional, Sequence

from mmcv.cnn import build_norm_layer
from torch import nn


class NamedMLP(nn.Sequential):
    """``fc0 -> bn0 -> relu0 -> ... -> fc{L-1} [-> bn{L-1}]``.

    Layers have names, so configs select them by name for any depth (e.g.
    ``paramwise_cfg`` keys matching ``bn``). Checkpoints written when these
    MLPs were plain ``nn.Sequential`` (keys ``projector.0.weight``,
    ``projector.1.running_mean``, ...) load unchanged: numbered keys are
    renamed to the layer at that position.

    Args:
        widths: ``in, hidden..., out``: ``len(widths) - 1`` linear layers.
        norm_cfg: Normalisation after every hidden linear layer, e.g.
            ``dict(type='BN1d')``.
        hidden_bias: Bias in the hidden linear layers.
        last_bias: Bias in the last linear layer.
        last_norm_cfg: Normalisation after the last linear layer (None: the
            MLP ends linear).
    """

    def __init__(self,
                 widths: Sequence[int],
                 norm_cfg: dict,
                 hidden_bias: bool = False,
                 last_bias: bool = False,
                 last_norm_cfg: Optional[dict] = None) -> None:
        if len(widths) < 2 or not all(
                isinstance(w, int) and w >= 1 for w in widths):
            raise ValueError(f'NamedMLP: widths={list(widths)!r}, expected '
                             'at least two positive ints (in, ..., out)')
        layers: List[tuple] = []
        last = len(widths) - 2
        for i, (width_in, width_out) in enumerate(zip(widths, widths[1:])):
            layers.append((f'fc{i}',
                           nn.Linear(width_in, width_out,
                                     bias=last_bias if i == last else
                                     hidden_bias)))
            norm = norm_cfg if i < last else last_norm_cfg
            if norm is not None:
                layers.append((f'bn{i}', build_norm_layer(norm,
                                                          width_out)[1]))
            if i < last:
                layers.append((f'relu{i}', nn.ReLU(inplace=True)))
        super().__init__(OrderedDict(layers))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        numbered = re.compile(re.escape(prefix) + r'(\d+)\.(.+)')
        names = list(self._modules)
        for key in list(state_dict):
            match = numbered.fullmatch(key)
            if match and int(match.group(1)) < len(names):
                name = names[int(match.group(1))]
                state_dict[f'{prefix}{name}.{match.group(2)}'] = (
                    state_dict.pop(key))
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
