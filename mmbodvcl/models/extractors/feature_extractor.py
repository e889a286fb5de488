"""A backbone that only encodes: pooled features for retrieval."""
from typing import Dict, List, Optional, Sequence, Union

from mmaction.registry import MODELS
from mmengine.model import BaseModel
from torch import Tensor

from mmbodvcl.functional.knn import encode_clips


@MODELS.register_module()
class VideoFeatureExtractor(BaseModel):
    """Encode videos into the pooled features of a backbone.

    A clip's feature is the global average of the backbone output over T, H
    and W (tuple outputs pooled per part and concatenated); a video's is the
    mean over its clips (``num_clips`` of the test pipeline). In ``predict``
    mode each data sample gets it as ``feature`` (D,), which retrieval
    metrics read. It has no loss: it is built by test configs only
    (``tools/test.py CONFIG CHECKPOINT``).

    The weights come from ``load_from``: any checkpoint with the encoder under
    ``backbone.*`` (a pretraining checkpoint as saved, or one written by
    ``tools/extract_backbone.py``). Loading one that lacks a backbone
    parameter, or has it in another shape, is an error: evaluating a
    half-random encoder would go unnoticed.

    Args:
        backbone: Config of the backbone, as in the pretraining config.
        data_preprocessor: Config of the data preprocessor (MMAction2's
            ``ActionDataPreprocessor`` with the pretraining mean and std).
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 backbone: dict,
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        # Called with the module first, as torch passes it.
        self.register_load_state_dict_pre_hook(
            VideoFeatureExtractor._check_backbone_keys)

    def _check_backbone_keys(self, state_dict: Dict[str, Tensor], prefix: str,
                             *args) -> None:
        own = {
            f'{prefix}backbone.{key}': value
            for key, value in self.backbone.state_dict().items()
        }
        missing = sorted(key for key in own if key not in state_dict)
        reshaped = sorted(
            key for key in own if key in state_dict
            and tuple(state_dict[key].shape) != tuple(own[key].shape))
        if missing or reshaped:
            found = sorted({key.split('.', 1)[0] for key in state_dict})
            raise KeyError(
                f'the checkpoint does not fit {type(self.backbone).__name__}:'
                f' {len(missing)} of its {len(own)} parameters are missing '
                f'(e.g. {missing[:3]}) and {len(reshaped)} have another '
                f'shape (e.g. {reshaped[:3]}); the checkpoint\'s top-level '
                f'key prefixes are {found}. Pass a checkpoint with keys '
                f'backbone.* of this backbone (tools/extract_backbone.py).')

    def extract_feat(self, inputs: Union[Tensor, Sequence[Tensor]]) -> Tensor:
        """``(N, V, C, T, H, W)`` clips -> ``(N, D)`` video features."""
        return encode_clips(self.backbone, inputs)

    def forward(self,
                inputs: Union[Tensor, Sequence[Tensor]],
                data_samples: Optional[List] = None,
                mode: str = 'tensor'):
        """``'tensor'``: ``(N, D)`` features; ``'predict'``: the data samples
        with ``feature`` set."""
        if mode == 'tensor':
            return self.extract_feat(inputs)
        if mode == 'predict':
            for data_sample, feature in zip(data_samples,
                                            self.extract_feat(inputs)):
                data_sample.set_field(feature, 'feature')
            return data_samples
        if mode == 'loss':
            raise RuntimeError(
                'VideoFeatureExtractor only encodes videos for evaluation '
                '(tools/test.py) and has no training loss')
        raise RuntimeError(f'Invalid mode "{mode}"; use "tensor" or '
                           f'"predict"')
