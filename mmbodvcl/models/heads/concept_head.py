"""Head of "Static and Dynamic Concepts": concept codes, their alignment
and the concept bottleneck (sections 3.1-3.2)."""
from typing import Dict, Optional

import torch
import torch.nn.functional as F
from mmaction.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from mmbodvcl.functional.concepts import concept_scores
from ..utils import NamedMLP

#: The three inputs of a clip: the clip, its static frame repeated T times
#: and its frame difference.
INPUT_KINDS = ('video', 'static', 'dynamic')


def _two_layer_mlp(in_channels: int, hid_channels: int, out_channels: int,
                   norm_cfg: dict) -> NamedMLP:
    """Linear-BN-ReLU-Linear (``fc0``, ``bn0``, ``relu0``, ``fc1``)."""
    return NamedMLP((in_channels, hid_channels, out_channels), norm_cfg,
                    last_bias=True)


@MODELS.register_module()
class ConceptHead(BaseModule):
    """Concept codes of the clip, static-frame and frame-difference features
    and the global losses of the method.

    Every input kind has its own optional projection (``projectors``) and
    its own ``K_s + K_d`` unit-norm prototypes (``prototypes``, the first
    ``K_s`` static concepts, the rest dynamic); the codes are cosine
    similarities (eq. 3). Losses (each a ``BaseWeightedLoss`` config):

    * ``loss_align_static``: static codes of the clips and static frames
      aligned (all ordered pairs); ``loss_align_dynamic``: dynamic codes of
      the clips and frame differences (eq. 4).
    * ``loss_sparsity`` (eq. 5) and ``loss_recon`` (eq. 6) on the bottleneck
      codes: all codes of a clip, the static codes of a static frame, the
      dynamic codes of a frame difference; each kind is decoded back to its
      pooled feature by its own 2-layer MLP (``reconstructors``), summed
      over kinds.
    * ``loss_entropy`` (optional, authors' code): flattens the dynamic codes
      of static frames and the static codes of frame differences.

    Prototypes are renormalised after every optimiser step and get no
    gradient during the first ``freeze_prototypes_iters`` steps (a buffer,
    so resuming keeps the schedule). With ``queue_len > 0`` the Sinkhorn
    prior also covers the codes of the last ``queue_len`` inputs of this
    rank (the authors' queue), once that many have been seen.

    Args:
        in_channels: C of the pooled backbone features. Defaults to 512.
        num_static: K_s. Defaults to 50.
        num_dynamic: K_d. Defaults to 50.
        projection: None (identity, the paper's default) or
            ``dict(hid_channels=..., out_channels=...)`` for a
            Linear-BN-ReLU-Linear projection per input kind.
        recon_hid_channels: Hidden width of the decoders. Defaults to 512.
        queue_len: Earlier codes per group in the Sinkhorn prior; 0 (the
            paper) disables the queue.
        freeze_prototypes_iters: Steps without prototype gradients.
        align_loss: Loss config.
        sparsity_loss / recon_loss: Loss configs, or None to leave the term
            out (Table 4 ablations; no decoders are built without
            ``recon_loss``).
        entropy_loss: Loss config or None (default, the paper).
        norm_cfg: Normalisation of the MLPs. Defaults to ``BN1d``.
        init_cfg: Initialisation config.
    """

    def __init__(self,
                 in_channels: int = 512,
                 num_static: int = 50,
                 num_dynamic: int = 50,
                 projection: Optional[dict] = None,
                 recon_hid_channels: int = 512,
                 queue_len: int = 0,
                 freeze_prototypes_iters: int = 0,
                 align_loss: dict = dict(type='ConceptAlignmentLoss'),
                 sparsity_loss: Optional[dict] = dict(
                     type='ConceptSparsityLoss'),
                 recon_loss: Optional[dict] = dict(
                     type='ConceptReconstructionLoss'),
                 entropy_loss: Optional[dict] = None,
                 norm_cfg: dict = dict(type='BN1d'),
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        for name, value, low in (('in_channels', in_channels,
                                  1), ('num_static', num_static,
                                       1), ('num_dynamic', num_dynamic, 1),
                                 ('recon_hid_channels', recon_hid_channels,
                                  1), ('queue_len', queue_len,
                                       0), ('freeze_prototypes_iters',
                                            freeze_prototypes_iters, 0)):
            if not isinstance(value, int) or value < low:
                raise ValueError(f'ConceptHead: {name}={value!r}, expected '
                                 f'an int >= {low}')
        self.num_static, self.num_dynamic = num_static, num_dynamic
        self.freeze_prototypes_iters = freeze_prototypes_iters
        self.embed_dim = self._build_projectors(in_channels, projection,
                                                norm_cfg)
        self.prototypes = nn.ModuleDict({
            kind:
            nn.Linear(self.embed_dim, num_static + num_dynamic, bias=False)
            for kind in INPUT_KINDS
        })
        if recon_loss:
            self.reconstructors = nn.ModuleDict({
                kind:
                _two_layer_mlp(self._bottleneck_width(kind),
                               recon_hid_channels, in_channels, norm_cfg)
                for kind in INPUT_KINDS
            })
        self.align_loss = MODELS.build(align_loss)
        self.sparsity_loss, self.recon_loss, self.entropy_loss = (
            MODELS.build(cfg) if cfg else None
            for cfg in (sparsity_loss, recon_loss, entropy_loss))
        self.register_buffer('num_steps', torch.zeros((), dtype=torch.long))
        self.register_buffer('static_queue',
                             torch.zeros(queue_len, num_static))
        self.register_buffer('dynamic_queue',
                             torch.zeros(queue_len, num_dynamic))
        self.register_buffer('queue_ptr', torch.zeros((), dtype=torch.long))
        self.register_buffer('queue_seen', torch.zeros((), dtype=torch.long))
        self.normalize_prototypes()

    def _build_projectors(self, in_channels: int, projection: Optional[dict],
                          norm_cfg: dict) -> int:
        """Build ``self.projectors``; returns the embedding size D."""
        if projection is None:
            self.projectors = nn.ModuleDict(
                {kind: nn.Identity()
                 for kind in INPUT_KINDS})
            return in_channels
        if set(projection) != {'hid_channels', 'out_channels'}:
            raise ValueError(f'ConceptHead: projection must be None or '
                             f'dict(hid_channels=..., out_channels=...), got '
                             f'{projection!r}')
        self.projectors = nn.ModuleDict({
            kind:
            _two_layer_mlp(in_channels, projection['hid_channels'],
                           projection['out_channels'], norm_cfg)
            for kind in INPUT_KINDS
        })
        return projection['out_channels']

    def _bottleneck_width(self, kind: str) -> int:
        return {
            'video': self.num_static + self.num_dynamic,
            'static': self.num_static,
            'dynamic': self.num_dynamic
        }[kind]

    def bottleneck(self, kind: str, codes: Tensor) -> Tensor:
        """The codes of ``kind`` that form its bottleneck: all of a clip's,
        the static ones of a static frame, the dynamic ones of a frame
        difference."""
        if kind == 'static':
            return codes[..., :self.num_static]
        if kind == 'dynamic':
            return codes[..., self.num_static:]
        return codes

    # ------------------------------------------------------------------
    # prototypes
    @property
    def prototypes_frozen(self) -> bool:
        return int(self.num_steps) < self.freeze_prototypes_iters

    @torch.no_grad()
    def normalize_prototypes(self) -> None:
        for layer in self.prototypes.values():
            layer.weight.copy_(F.normalize(layer.weight, dim=1))

    def init_weights(self) -> None:
        super().init_weights()
        self.normalize_prototypes()

    def prototype_weights(self, kind: str) -> Tensor:
        """``(K_s + K_d, D)`` unit-norm prototypes of ``kind`` (detached
        while frozen)."""
        weight = F.normalize(self.prototypes[kind].weight, dim=1)
        return weight.detach() if self.prototypes_frozen else weight

    @torch.no_grad()
    def after_optim_step(self) -> None:
        """Renormalise the prototypes and count the step."""
        self.normalize_prototypes()
        self.num_steps += 1

    # ------------------------------------------------------------------
    # codes and losses
    def _check_features(self, features: Dict[str, Tensor]) -> None:
        if set(features) != set(INPUT_KINDS):
            raise ValueError(f'ConceptHead needs features of the kinds '
                             f'{INPUT_KINDS}, got {sorted(features)}')
        shapes = {tuple(feats.shape) for feats in features.values()}
        first = features['video']
        if len(shapes) != 1 or first.dim() != 3:
            raise ValueError(f'ConceptHead: every kind needs pooled features '
                             f'(P, N, C) of one shape, got {sorted(shapes)}')

    def codes(self, features: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Concept codes (eq. 3).

        Args:
            features: ``{kind: (P, N, C)}`` pooled backbone features, P
                inputs of each kind per video (one per clip).

        Returns:
            ``{kind: (P, N, K_s + K_d)}`` cosine similarities.
        """
        self._check_features(features)
        codes = {}
        for kind, feats in features.items():
            embedded = self.projectors[kind](feats.flatten(0, 1))
            codes[kind] = concept_scores(embedded,
                                         self.prototype_weights(kind)).view(
                                             *feats.shape[:2], -1)
        return codes

    def loss(self, features: Dict[str, Tensor],
             codes: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Alignment and bottleneck losses of one batch; then the aligned
        codes enter the queue (when there is one).

        Args:
            features: ``{kind: (P, N, C)}`` as given to :meth:`codes`.
            codes: What :meth:`codes` returned for them.
        """
        static, dynamic = slice(0, self.num_static), slice(
            self.num_static, None)
        static_group = torch.cat(
            [codes['video'][..., static], codes['static'][..., static]])
        dynamic_group = torch.cat(
            [codes['video'][..., dynamic], codes['dynamic'][..., dynamic]])
        losses = {
            'loss_align_static':
            self.align_loss(static_group, self._history(self.static_queue)),
            'loss_align_dynamic':
            self.align_loss(dynamic_group, self._history(self.dynamic_queue))
        }
        losses.update(self._bottleneck_losses(features, codes))
        if self.entropy_loss is not None:
            losses['loss_entropy'] = (
                self.entropy_loss(codes['static'][..., dynamic]) +
                self.entropy_loss(codes['dynamic'][..., static]))
        self._enqueue(static_group, dynamic_group)
        return losses

    def _bottleneck_losses(self, features: Dict[str, Tensor],
                           codes: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """``loss_sparsity`` and ``loss_recon`` (those configured), each
        summed over the input kinds."""
        losses = {}
        bottlenecks = {
            kind: self.bottleneck(kind, codes[kind]).flatten(0, 1)
            for kind in INPUT_KINDS
        }
        if self.sparsity_loss is not None:
            losses['loss_sparsity'] = sum(
                self.sparsity_loss(code) for code in bottlenecks.values())
        if self.recon_loss is not None:
            losses['loss_recon'] = sum(
                self.recon_loss(self.reconstructors[kind](code),
                                features[kind].flatten(0, 1))
                for kind, code in bottlenecks.items())
        return losses

    # ------------------------------------------------------------------
    # queue of earlier codes (authors' code)
    def _history(self, queue: Tensor) -> Optional[Tensor]:
        """The queue once it holds ``queue_len`` real codes, else None."""
        length = queue.shape[0]
        if length == 0 or int(self.queue_seen) < length:
            return None
        return queue

    @torch.no_grad()
    def _enqueue(self, static_group: Tensor, dynamic_group: Tensor) -> None:
        length = self.static_queue.shape[0]
        if length == 0:
            return
        static_rows = static_group.detach().flatten(0, 1)
        rows = static_rows.shape[0]
        if rows > length:
            raise ValueError(f'ConceptHead: {rows} codes per step (2 x P x '
                             f'N) do not fit queue_len={length}')
        index = (self.queue_ptr +
                 torch.arange(rows, device=static_rows.device)) % length
        self.static_queue[index] = static_rows.to(self.static_queue.dtype)
        self.dynamic_queue[index] = dynamic_group.detach().flatten(0, 1).to(
            self.dynamic_queue.dtype)
        self.queue_ptr.copy_((self.queue_ptr + rows) % length)
        self.queue_seen.copy_((self.queue_seen + rows).clamp(max=length))
