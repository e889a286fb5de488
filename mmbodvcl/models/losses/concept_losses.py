"""Losses of "Static and Dynamic Concepts" (concept alignment, bottleneck
regularisers, local concept contrast).

Each is MMAction2's ``BaseWeightedLoss``: ``loss_weight`` is the balancing
weight of the paper's eq. 11. The mathematics lives in
:mod:`mmbodvcl.functional.concepts`.
"""
from typing import Optional

from mmaction.models.losses import BaseWeightedLoss
from mmaction.registry import MODELS
from torch import Tensor

from mmbodvcl.functional.concepts import (concept_alignment_loss,
                                          concept_sparsity,
                                          local_concept_contrast,
                                          negative_entropy,
                                          reconstruction_loss)


def _check_positive(owner: str, **values: float) -> None:
    for name, value in values.items():
        if not value > 0:
            raise ValueError(f'{owner}: {name} must be > 0, got {value!r}')


@MODELS.register_module()
class ConceptAlignmentLoss(BaseWeightedLoss):
    """Cross-entropy between the Sinkhorn codes of one input and the
    temperature softmax of another input's concept codes, over all ordered
    pairs of a group (eq. 4).

    Args:
        temperature: Softmax temperature. Defaults to 0.1.
        epsilon: Sinkhorn's entropic regularisation. Defaults to 0.05.
        sinkhorn_iters: Sinkhorn rounds. Defaults to 3.
        loss_weight: Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 0.1,
                 epsilon: float = 0.05,
                 sinkhorn_iters: int = 3,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        _check_positive(type(self).__name__,
                        temperature=temperature,
                        epsilon=epsilon,
                        sinkhorn_iters=sinkhorn_iters)
        self.temperature = temperature
        self.epsilon = epsilon
        self.sinkhorn_iters = sinkhorn_iters

    def _forward(self,
                 scores: Tensor,
                 history: Optional[Tensor] = None) -> Tensor:
        """``scores (P, N, K)``, optional ``history (L, K)`` -> scalar."""
        return concept_alignment_loss(scores, self.temperature, self.epsilon,
                                      self.sinkhorn_iters, history)


@MODELS.register_module()
class ConceptSparsityLoss(BaseWeightedLoss):
    """Mean absolute concept code (the L1 norm of eq. 5 divided by K)."""

    def _forward(self, codes: Tensor) -> Tensor:
        return concept_sparsity(codes)


@MODELS.register_module()
class ConceptReconstructionLoss(BaseWeightedLoss):
    """``2 - 2 cos`` between the features decoded from the codes and the
    features themselves, with stop-gradient on the latter (eq. 6)."""

    def _forward(self, reconstruction: Tensor, target: Tensor) -> Tensor:
        return reconstruction_loss(reconstruction, target)


@MODELS.register_module()
class ConceptEntropyLoss(BaseWeightedLoss):
    """Negative entropy of ``softmax(codes / temperature)``: flattens the
    codes of concepts an input cannot carry (the authors' code only).

    Args:
        temperature: Defaults to 0.1.
        loss_weight: Defaults to 0.1 (the authors' code).
    """

    def __init__(self,
                 temperature: float = 0.1,
                 loss_weight: float = 0.1) -> None:
        super().__init__(loss_weight=loss_weight)
        _check_positive(type(self).__name__, temperature=temperature)
        self.temperature = temperature

    def _forward(self, scores: Tensor) -> Tensor:
        return negative_entropy(scores, self.temperature)


@MODELS.register_module()
class LocalConceptContrastLoss(BaseWeightedLoss):
    """Margin contrast of the local features of valid concepts (eq. 9),
    averaged over both directions (each side once the query, the other the
    stop-gradient key).

    Args:
        margin: Distance (of unit vectors) negatives are pushed beyond.
            Defaults to 1.4 (the authors' code; about sqrt(2), i.e.
            orthogonal).
        eps: Added under the distance's square root. Defaults to 1e-5.
        loss_weight: Defaults to 1.0.
    """

    def __init__(self,
                 margin: float = 1.4,
                 eps: float = 1e-5,
                 loss_weight: float = 1.0) -> None:
        super().__init__(loss_weight=loss_weight)
        _check_positive(type(self).__name__, margin=margin, eps=eps)
        self.margin = margin
        self.eps = eps

    def _forward(self, local_a: Tensor, local_b: Tensor,
                 valid: Tensor) -> Tensor:
        """``local_a``, ``local_b (N, K, D)``, ``valid (N, K)`` -> scalar."""
        return 0.5 * (local_concept_contrast(local_a, local_b, valid,
                                             self.margin, self.eps) +
                      local_concept_contrast(local_b, local_a, valid,
                                             self.margin, self.eps))
