"""Head of V-BYOL: a predictor regressing the momentum encoder's output."""
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from ..utils import NamedMLP


@MODELS.register_module()
class BYOLPredictionHead(BaseModule):
    """Predictor MLP (``fc0-bn0-relu0-fc1``) on the online embeddings and a
    regression loss towards the target embeddings of the other views.

    Args:
        in_channels: D of the online embeddings. Defaults to 128.
        hidden_channels: Hidden width of the predictor. Defaults to 4096.
        out_channels: D of the targets. Defaults to 128.
        loss: Config of the loss. Defaults to ``dict(type='BYOLCosineLoss')``.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 128,
                 hidden_channels: int = 4096,
                 out_channels: int = 128,
                 loss: dict = dict(type='BYOLCosineLoss'),
                 init_cfg: dict = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.predictor = NamedMLP((in_channels, hidden_channels, out_channels),
                                  norm_cfg=dict(type='BN1d'),
                                  hidden_bias=True,
                                  last_bias=True)
        self.loss_module = MODELS.build(loss)

    def loss(self, embeddings: Tensor, targets: Tensor) -> Tensor:
        """``embeddings (V, N, in_channels)`` (online), ``targets
        (V, N, out_channels)`` (momentum encoder) -> scalar loss."""
        num_views, batch_size, dim = embeddings.shape
        predictions = self.predictor(
            embeddings.reshape(num_views * batch_size, dim))
        return self.loss_module(
            predictions.reshape(num_views, batch_size, -1), targets)
