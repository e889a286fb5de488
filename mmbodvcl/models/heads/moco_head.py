"""Head of V-MoCo: a queue of momentum keys and InfoNCE against it."""
import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor

from mmbodvcl.functional.contrastive import all_gather_no_grad


@MODELS.register_module()
class MoCoQueueHead(BaseModule):
    """Scores online queries against the momentum keys of the other views of
    their video and a first-in-first-out queue of past keys.

    The queue and its write position are registered buffers, so they are
    saved in checkpoints and restored on resume. An algorithm that decouples
    static and dynamic parts builds one head, hence one queue, per part.

    Args:
        embed_dim: D, the size of queries and keys. Defaults to 128.
        queue_len: K, the number of keys kept. Defaults to 65536.
        loss: Config of the loss. Defaults to
            ``dict(type='QueueInfoNCELoss', temperature=0.1)``.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 embed_dim: int = 128,
                 queue_len: int = 65536,
                 loss: dict = dict(type='QueueInfoNCELoss', temperature=0.1),
                 init_cfg: dict = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dim < 1 or queue_len < 1:
            raise ValueError(f'MoCoQueueHead needs embed_dim >= 1 and '
                             f'queue_len >= 1, got embed_dim={embed_dim}, '
                             f'queue_len={queue_len}')
        self.embed_dim = embed_dim
        self.loss_module = MODELS.build(loss)
        self.register_buffer(
            'queue', F.normalize(torch.randn(queue_len, embed_dim), dim=1))
        self.register_buffer('queue_ptr', torch.zeros((), dtype=torch.long))

    def _check(self, name: str, tensor: Tensor) -> None:
        if tensor.dim() != 3 or tensor.shape[-1] != self.embed_dim:
            raise ValueError(f'{name} must be (V, N, {self.embed_dim}), got '
                             f'{tuple(tensor.shape)}')

    def loss(self, queries: Tensor, keys: Tensor) -> Tensor:
        """``queries (V, N, D)`` (online), ``keys (V, N, D)`` (momentum
        encoder) -> scalar loss against the current queue."""
        self._check('queries', queries)
        self._check('keys', keys)
        return self.loss_module(queries, keys, self.queue)

    @torch.no_grad()
    def enqueue(self, keys: Tensor) -> None:
        """Write ``keys (V, N, D)`` of every rank over the oldest entries."""
        self._check('keys', keys)
        keys = all_gather_no_grad(
            F.normalize(keys.reshape(-1, self.embed_dim).float(), dim=1))
        queue_len = self.queue.shape[0]
        if keys.shape[0] > queue_len:
            raise ValueError(
                f'{keys.shape[0]} keys per step (views x batch x ranks) do '
                f'not fit a queue of {queue_len}; raise queue_len')
        index = (self.queue_ptr + torch.arange(
            keys.shape[0], device=keys.device)) % queue_len
        self.queue[index] = keys.to(self.queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + keys.shape[0]) % queue_len)
