"""V-MoCo (and its BOD-VCL form)."""
from typing import Dict, List, Optional

from mmaction.registry import MODELS
from torch import Tensor

from .momentum import MomentumVCL


@MODELS.register_module()
class VMoCo(MomentumVCL):
    """V-MoCo: online queries against momentum keys of the other views
    (positives) and a queue of past keys (negatives).

    Keys come from ``target_net`` (a momentum copy of backbone and neck,
    momentum cosine-annealed from ``base_momentum`` to 1) with shuffle-BN
    across ranks. With a decoupler the keys of each part (e.g. static and
    dynamic) go to
    separate queues (one ``MoCoQueueHead`` per part). The keys of an
    iteration are enqueued after its loss, once per :meth:`loss` /
    :meth:`loss_upper` call.

    Args:
        base_momentum: ``gamma_0``. Defaults to 0.994.
        total_iters: Length of the momentum schedule; None uses the
            Runner's ``max_iters``.
        shuffle_bn: Shuffle the key batch across ranks. Defaults to True.
        **kwargs: :class:`BaseVCL`'s arguments; ``head`` is usually
            ``dict(type='MoCoQueueHead', embed_dim=128, queue_len=65536,
            loss=dict(type='QueueInfoNCELoss', temperature=0.1))``.
    """

    def __init__(self,
                 *args,
                 base_momentum: float = 0.994,
                 total_iters: Optional[int] = None,
                 shuffle_bn: bool = True,
                 **kwargs) -> None:
        super().__init__(
            *args,
            base_momentum=base_momentum,
            total_iters=total_iters,
            **kwargs)
        self.shuffle_bn = shuffle_bn

    def contrastive_loss(self, parts: Dict[str, Tensor],
                         inputs: List[Tensor]) -> Dict[str, Tensor]:
        keys = self.target_parts(inputs, shuffle=self.shuffle_bn)
        losses = {}
        for part, queries in parts.items():
            losses[f'loss_{part}'] = self.heads[part].loss(
                queries, keys[part])
            self.heads[part].enqueue(keys[part])
        return losses
