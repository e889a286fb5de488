"""The decoupling interface: how an algorithm gets the embeddings it
contrasts.

An algorithm (``BaseVCL`` and its subclasses) owns an encoder (backbone +
neck, giving per-frame embeddings ``(B, M, T)``) and one head per *part*.
A decoupler turns the views of a batch into one embedding per part, using
that encoder (or the momentum copy of it), and may define a lower-level loss
for bi-level training. Decouplers hold no parameters of their own, so the
online and the momentum branch share one.

To add a family: subclass :class:`BaseDecoupler`, declare ``parts``,
``statistics`` and ``has_lower_loss``, implement :meth:`forward` (and
:meth:`lower_loss` if it has one), register it in ``mmaction.registry.MODELS``
and name it in a config: ``model=dict(decoupler=dict(type='MyDecoupler'))``.
:meth:`probe_parts` (what linear probes read) then works through
:meth:`forward`; override it only where evaluation must differ from training
(e.g. a random choice made deterministic).
"""
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Sequence, Tuple

import torch
from mmengine.model import BaseModule
from torch import Tensor

#: ``clips (B, C, T_in, H, W) -> per-frame embeddings (B, M, T)``.
Encoder = Callable[[Tensor], Tensor]


@dataclass
class Decoupled:
    """What a decoupler returns for a batch of V views of N videos.

    Attributes:
        parts: ``{part: (V, N, D)}``, one entry per name in the decoupler's
            ``parts``; view j of video i at ``[j, i]``.
        statistics: Scalars to log (keys from the decoupler's
            ``statistics``; never containing ``loss``).
        lower_losses: The lower-level loss dict (``loss_*`` entries and
            logged parts) when it was asked for, else empty.
    """
    parts: Dict[str, Tensor]
    statistics: Dict[str, Tensor] = field(default_factory=dict)
    lower_losses: Dict[str, Tensor] = field(default_factory=dict)


def encode_views(encoder: Encoder, views: Sequence[Tensor]) -> Tensor:
    """Per-frame embeddings of all views in one encoder pass (BatchNorm sees
    every view): ``V x (N, C, T_in, H, W)`` -> ``(V, N, M, T)``."""
    z = encoder(torch.cat(list(views)))
    return z.reshape(len(views), views[0].shape[0], *z.shape[1:])


class BaseDecoupler(BaseModule):
    """Base of the decouplers.

    Class attributes (the declaration an algorithm and the bi-level wrapper
    read):
        parts: Names of the embeddings the algorithm contrasts, one head
            each (state-dict keys ``heads.<part>.*``).
        statistics: Names of the scalars :meth:`forward` logs.
        has_lower_loss: Whether :meth:`lower_loss` exists (bi-level training
            and ``with_lower_loss`` need it).
        min_lower_clips: The fewest clips (per rank) :meth:`lower_loss`
            accepts; an algorithm's ``lower_batch`` below it is refused
            before the step. A need that depends on the features' shape
            (the batch Koopman operator's ``M`` pairs) is checked where it
            is known instead, with the same kind of error.
    """
    parts: Tuple[str, ...] = ()
    statistics: Tuple[str, ...] = ()
    has_lower_loss: bool = False
    min_lower_clips: int = 1

    def forward(self,
                encoder: Encoder,
                views: List[Tensor],
                with_lower_loss: bool = False) -> Decoupled:
        """Embeddings of every part (and the lower-level loss from the same
        features when ``with_lower_loss``)."""
        raise NotImplementedError

    def probe_parts(self, encoder: Encoder,
                    clips: Tensor) -> Dict[str, Tensor]:
        """The parts of one batch of clips ``(N, C, T_in, H, W)`` for
        evaluation (linear probes): ``{part: (N, D)}``, one entry per name in
        ``parts``, from :meth:`forward` on a single view. The caller sets
        eval mode and ``no_grad``."""
        decoupled = self.forward(encoder, [clips])
        return {part: value[0] for part, value in decoupled.parts.items()}

    def lower_loss(self, encoder: Encoder,
                   views: List[Tensor]) -> Dict[str, Tensor]:
        """The lower-level loss dict of bi-level training."""
        raise NotImplementedError(
            f'{type(self).__name__} has no lower-level loss '
            '(has_lower_loss=False): train it single-level with a plain '
            'OptimWrapper')
