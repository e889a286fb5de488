"""Local concept contrast of "Static and Dynamic Concepts" (section 3.3)."""
from typing import Dict, NamedTuple, Optional

from mmaction.registry import MODELS
from mmengine.logging import MessageHub
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmbodvcl.functional.concepts import (ATTENTION_NORMS,
                                          concept_cross_attention,
                                          valid_concepts)


class ConceptInput(NamedTuple):
    """One input of a local contrast pair: its feature map
    ``(N, C, T, h, w)``, the prototypes ``(K, D)`` of the concept group and
    its codes ``(N, K)`` of that group (concept k at index k of both)."""
    feature_map: Tensor
    prototypes: Tensor
    codes: Tensor


@MODELS.register_module()
class LocalConceptContrast(BaseModule):
    """Local features of the concepts of two inputs and their margin
    contrast over the valid concepts.

    The prototypes, linearly projected (``query_proj``), attend over the
    ``T * h * w`` positions of a feature map projected to keys and values
    (``key_proj``, ``value_proj``); the prototypes are added back (residual),
    giving one local feature per concept (eq. 7). Valid concepts are those
    in the top ``top_ratio`` of the codes of both inputs (eq. 8); their
    local features are contrasted by ``loss`` (eq. 9).

    No loss is returned during the warm-up: ``warmup_epochs`` epochs or
    ``warmup_iters`` iterations, read from the MMEngine ``MessageHub``'s
    runtime info (``epoch`` / ``iter``, which the Runner sets before every
    epoch / iteration and restores on resume). Outside a Runner, a hub
    without that info counts as the start of training.

    Args:
        in_channels: C of the feature maps. Defaults to 512.
        embed_dim: D of the prototypes. Defaults to 512.
        top_ratio: Share of the concepts kept per input. Defaults to 0.1.
        attention_norm: ``'locations'`` (softmax over positions, the paper)
            or ``'concepts'`` (the authors' code); see
            :func:`~mmbodvcl.functional.concepts.concept_cross_attention`.
        warmup_epochs: Epochs without the loss. Defaults to 5 (the paper).
        warmup_iters: Iterations without the loss (with warmup_epochs=0).
        loss: Loss config. Defaults to
            ``dict(type='LocalConceptContrastLoss', margin=1.4)``.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 512,
                 embed_dim: int = 512,
                 top_ratio: float = 0.1,
                 attention_norm: str = 'locations',
                 warmup_epochs: int = 5,
                 warmup_iters: int = 0,
                 loss: dict = dict(type='LocalConceptContrastLoss',
                                   margin=1.4),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not 0 < top_ratio <= 1:
            raise ValueError(f'LocalConceptContrast: top_ratio must be in '
                             f'(0, 1], got {top_ratio!r}')
        if attention_norm not in ATTENTION_NORMS:
            raise ValueError(f'LocalConceptContrast: attention_norm must be '
                             f'one of {ATTENTION_NORMS}, got '
                             f'{attention_norm!r}')
        if min(warmup_epochs, warmup_iters) < 0 or (warmup_epochs
                                                    and warmup_iters):
            raise ValueError(f'LocalConceptContrast: set at most one of '
                             f'warmup_epochs={warmup_epochs!r} and '
                             f'warmup_iters={warmup_iters!r} (>= 0)')
        self.in_channels = in_channels
        self.top_ratio = top_ratio
        self.attention_norm = attention_norm
        self.warmup_epochs, self.warmup_iters = warmup_epochs, warmup_iters
        self.query_proj = nn.Linear(embed_dim, embed_dim, bias=False)
        self.key_proj = nn.Linear(in_channels, embed_dim, bias=False)
        self.value_proj = nn.Linear(in_channels, embed_dim, bias=False)
        self.loss_module = MODELS.build(loss)

    @property
    def in_warmup(self) -> bool:
        """Whether the Runner's epoch / iteration is still in the
        warm-up."""
        hub = MessageHub.get_current_instance()
        if self.warmup_epochs:
            return (hub.get_info('epoch') or 0) < self.warmup_epochs
        return (hub.get_info('iter') or 0) < self.warmup_iters

    def local_features(self, feature_map: Tensor,
                       prototypes: Tensor) -> Tensor:
        """``feature_map (N, C, T, h, w)`` and ``prototypes (K, D)`` ->
        local features ``(N, K, D)``."""
        if feature_map.dim() != 5 or feature_map.shape[1] != self.in_channels:
            raise ValueError(f'LocalConceptContrast expects feature maps '
                             f'(N, {self.in_channels}, T, h, w), got '
                             f'{tuple(feature_map.shape)}')
        positions = feature_map.flatten(2).transpose(1, 2)  # (N, L, C)
        return concept_cross_attention(self.query_proj(prototypes),
                                       self.key_proj(positions),
                                       self.value_proj(positions), prototypes,
                                       self.attention_norm)

    def loss(self, name: str, first: ConceptInput,
             second: ConceptInput) -> Dict[str, Tensor]:
        """Local contrast between two inputs of the same videos (a clip and
        its static frame, or a clip and its frame difference) over one
        group of concepts.

        Returns:
            ``{}`` during the warm-up, else ``loss_local_{name}`` and the
            logged mean number of valid concepts per video
            ``valid_{name}``.
        """
        if self.in_warmup:
            return {}
        num_concepts = first.codes.shape[-1]
        top_k = max(1, round(self.top_ratio * num_concepts))
        valid = valid_concepts(first.codes, second.codes, top_k)
        local_first = self.local_features(first.feature_map, first.prototypes)
        local_second = self.local_features(second.feature_map,
                                           second.prototypes)
        return {
            f'loss_local_{name}':
            self.loss_module(local_first, local_second, valid),
            f'valid_{name}':
            valid.sum(-1).float().mean()
        }
