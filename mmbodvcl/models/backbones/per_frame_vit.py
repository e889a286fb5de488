"""Per-frame features from MMAction2's video ViT (``VisionTransformer``).

The stock ViT pools every token into one clip vector (``(N, C)``); BOD-VCL
needs one feature per temporal position to fit its Koopman operator. This
adapter keeps the stock module and parameters (so its checkpoint loads into a
stock ``VisionTransformer`` for finetuning) and only changes the pooling.
"""
from torch import Tensor

from mmaction.models.backbones import VisionTransformer
from mmaction.registry import MODELS


@MODELS.register_module()
class PerFrameViT(VisionTransformer):
    """:class:`mmaction.models.VisionTransformer` returning the tokens
    averaged per temporal position.

    Every argument is the stock ViT's. Each token covers ``tubelet_size``
    frames, so ``T = T_in / tubelet_size`` (``tubelet_size=1`` gives one
    feature per input frame). The norm is the stock one: ``fc_norm`` after
    averaging when ``use_mean_pooling`` (its default), else ``norm`` on every
    token before averaging.

    Shapes: ``(N, C_in, T_in, H, W) -> (N, embed_dims, T_in / tubelet_size)``.
    """

    def __init__(self, **kwargs) -> None:
        if kwargs.get('return_feat_map', False):
            raise ValueError('PerFrameViT always pools per temporal position; '
                             'use the stock VisionTransformer for '
                             'return_feat_map=True')
        super().__init__(**kwargs, return_feat_map=True)

    def forward(self, x: Tensor) -> Tensor:
        """``(N, C_in, T_in, H, W)`` -> ``(N, C, T)``."""
        if x.dim() != 5:
            raise ValueError(f'PerFrameViT expects inputs of shape '
                             f'(N, C, T, H, W), got {tuple(x.shape)}')
        feat_map = super().forward(x)  # (N, C, T, h, w), after ``self.norm``
        per_position = feat_map.mean(dim=(3, 4)).transpose(1, 2)  # (N, T, C)
        if self.fc_norm is not None:
            per_position = self.fc_norm(per_position)
        return per_position.transpose(1, 2).contiguous()
