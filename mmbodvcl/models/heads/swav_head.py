"""Head of V-SwAV: learnable prototypes and the swapped-prediction loss."""
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn


@MODELS.register_module()
class SwAVPrototypeHead(BaseModule):
    """Scores embeddings against K unit-norm prototypes and applies SwAV's
    loss.

    The prototypes are renormalised after every optimiser step
    (:meth:`after_optim_step`) and receive no gradient during the first
    ``freeze_prototypes_iters`` steps (SwAV freezes them for the first
    epoch). The step count is a buffer, so resuming keeps the schedule.

    Args:
        embed_dim: D of the embeddings. Defaults to 128.
        num_prototypes: K. Defaults to 1000.
        freeze_prototypes_iters: Steps without prototype gradients, usually
            the iterations of one epoch. Defaults to 0.
        loss: Config of the loss. Defaults to ``dict(type='SwAVLoss')``
            (temperature 0.1, epsilon 0.05, 3 Sinkhorn rounds).
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 embed_dim: int = 128,
                 num_prototypes: int = 1000,
                 freeze_prototypes_iters: int = 0,
                 loss: dict = dict(type='SwAVLoss'),
                 init_cfg: dict = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_prototypes < 2 or freeze_prototypes_iters < 0:
            raise ValueError(
                f'SwAVPrototypeHead needs num_prototypes >= 2 and '
                f'freeze_prototypes_iters >= 0, got num_prototypes='
                f'{num_prototypes}, freeze_prototypes_iters='
                f'{freeze_prototypes_iters}')
        self.prototypes = nn.Linear(embed_dim, num_prototypes, bias=False)
        self.freeze_prototypes_iters = freeze_prototypes_iters
        self.loss_module = MODELS.build(loss)
        self.register_buffer('num_steps', torch.zeros((), dtype=torch.long))
        self.normalize_prototypes()

    @property
    def prototypes_frozen(self) -> bool:
        return int(self.num_steps) < self.freeze_prototypes_iters

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        self.prototypes.weight.copy_(
            F.normalize(self.prototypes.weight, dim=1))

    def init_weights(self) -> None:
        super().init_weights()
        self.normalize_prototypes()

    def loss(self, embeddings: Tensor) -> Tensor:
        """``embeddings (V, N, D)`` -> scalar loss."""
        weight = self.prototypes.weight
        if self.prototypes_frozen:
            weight = weight.detach()
        scores = F.normalize(embeddings, dim=-1) @ F.normalize(
            weight, dim=1).t()  # (V, N, K)
        return self.loss_module(scores)

    @torch.no_grad()
    def after_optim_step(self) -> None:
        """Renormalise the prototypes and count the step."""
        self.normalize_prototypes()
        self.num_steps += 1
