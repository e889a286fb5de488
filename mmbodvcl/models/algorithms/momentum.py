"""Momentum (target) encoders of V-MoCo and V-BYOL."""
import math
from typing import Dict, List, Optional

import torch
from mmengine.logging import MessageHub
from mmengine.model import ExponentialMovingAverage
from torch import Tensor, nn

from mmbodvcl.functional.contrastive import batch_shuffle, batch_unshuffle

from .base import BaseVCL


class CosineMomentumEncoder(ExponentialMovingAverage):
    """EMA copy of an encoder whose momentum is annealed to 1 by a cosine.

    In the paper's convention ``theta_m <- gamma theta_m + (1 - gamma)
    theta`` (eq. 3), ``gamma_k = 1 - (1 - base_momentum) * (cos(pi k / K) +
    1) / 2`` at update ``k`` of ``K``. ``k`` is MMEngine's ``steps`` buffer,
    so it is checkpointed and a resumed run continues the schedule exactly.
    As in MMEngine's :class:`ExponentialMovingAverage`, the first update
    copies the encoder; buffers (BatchNorm statistics) follow the encoder.

    Args:
        model: The online encoder to copy; the copy has no gradients.
        base_momentum: ``gamma_0``, e.g. 0.994 (MoCo) or 0.996 (BYOL).
        total_iters: ``K``; None reads the Runner's ``max_iters`` from the
            message hub.
    """

    def __init__(self,
                 model: nn.Module,
                 base_momentum: float,
                 total_iters: Optional[int] = None) -> None:
        if not 0.0 < base_momentum < 1.0:
            raise ValueError(f'base_momentum must be in (0, 1), got '
                             f'{base_momentum}')
        if total_iters is not None and total_iters < 1:
            raise ValueError(f'total_iters must be >= 1, got {total_iters}')
        # MMEngine's ``momentum`` is the weight of the new parameters.
        super().__init__(model, momentum=1.0 - base_momentum)
        self.base_momentum = base_momentum
        self.total_iters = total_iters

    def _total_iters(self) -> int:
        total = self.total_iters or MessageHub.get_current_instance(
        ).get_info('max_iters')
        if not total:
            raise RuntimeError(
                'The cosine momentum schedule needs the number of training '
                'iterations: set total_iters in the algorithm config or train '
                "with MMEngine's Runner (which publishes max_iters).")
        return int(total)

    def current_momentum(self, steps: int) -> float:
        """``gamma`` at update ``steps``."""
        progress = min(steps / self._total_iters(), 1.0)
        return 1.0 - (1.0 - self.base_momentum) * (
            math.cos(math.pi * progress) + 1.0) / 2.0

    def avg_func(self, averaged_param: Tensor, source_param: Tensor,
                 steps: int) -> None:
        averaged_param.lerp_(source_param,
                             1.0 - self.current_momentum(int(steps)))

    def sync(self, model: nn.Module) -> None:
        """Copy ``model``'s parameters and buffers (e.g. after the online
        encoder was initialised)."""
        self.module.load_state_dict(model.state_dict())


class MomentumVCL(BaseVCL):
    """:class:`BaseVCL` with a momentum copy ``target_net`` of backbone and
    neck (state-dict keys ``target_net.module.{0,1}.*``, outside
    ``backbone.*``; no parameter of it requires grad). The decoupler holds
    no parameters, so both branches share it.

    Args:
        base_momentum: ``gamma_0`` of the cosine schedule.
        total_iters: Length of the schedule; None uses the Runner's
            ``max_iters``.
        **kwargs: :class:`BaseVCL`'s arguments.
    """

    def __init__(self,
                 *args,
                 base_momentum: float,
                 total_iters: Optional[int] = None,
                 **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.target_net = CosineMomentumEncoder(
            self._online_encoder(), base_momentum, total_iters)

    def _online_encoder(self) -> nn.Sequential:
        return nn.Sequential(self.backbone, self.neck)

    def init_weights(self) -> None:
        super().init_weights()
        # The copy was initialised independently; start it equal to online.
        self.target_net.sync(self._online_encoder())

    @torch.no_grad()
    def target_parts(self,
                     inputs: List[Tensor],
                     shuffle: bool = False) -> Dict[str, Tensor]:
        """Embeddings of every part from the momentum encoder.

        Args:
            inputs: V views ``(N, C, T_in, H, W)``.
            shuffle: Shuffle each batch across ranks before the encoder and
                restore the order after it (shuffle-BN).

        Returns:
            ``{part: (V, N, D)}``.
        """
        backbone, neck = self.target_net.module

        def encode(clips: Tensor) -> Tensor:
            if not shuffle:
                return neck(backbone(clips))
            clips, unshuffle_index = batch_shuffle(clips)
            return batch_unshuffle(neck(backbone(clips)), unshuffle_index)

        return self.decouple_views(inputs, encoder=encode).parts

    @property
    def needs_post_step_updates(self) -> bool:
        return True

    def after_optim_step(self) -> None:
        super().after_optim_step()
        self.target_net.update_parameters(self._online_encoder())
