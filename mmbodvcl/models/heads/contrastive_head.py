"""Head of V-SimCLR: InfoNCE over the views of the batch."""
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor


@MODELS.register_module()
class MultiViewContrastiveHead(BaseModule):
    """Parameter-free head that scores video embeddings with a contrastive
    loss over all views of the batch.

    Args:
        loss: Config of the loss. Defaults to
            ``dict(type='MultiViewInfoNCELoss', temperature=0.1)``.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 loss: dict = dict(type='MultiViewInfoNCELoss',
                                   temperature=0.1),
                 init_cfg: dict = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.loss_module = MODELS.build(loss)

    def loss(self, embeddings: Tensor) -> Tensor:
        """``embeddings (V, N, D)``, view j of video i at ``[j, i]`` ->
        scalar loss."""
        return self.loss_module(embeddings)
