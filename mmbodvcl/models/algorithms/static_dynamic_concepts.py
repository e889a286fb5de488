"""Static and Dynamic Concepts (Qian et al., ECCV 2022) on the decoupler
interface."""
from typing import Dict, List, Optional

from mmaction.registry import MODELS
from torch import Tensor

from mmbodvcl.functional.concepts import concept_scores
from ..decouplers import encode_views
from ..heads.concept_head import INPUT_KINDS
from ..heads.local_concept_contrast import ConceptInput
from .base import BaseVideoSSL


@MODELS.register_module()
class StaticDynamicConcepts(BaseVideoSSL):
    """Concept alignment, concept bottleneck and local concept contrast over
    a clip, its static frame and its frame difference (docs/concepts.md).

    The ``decoupler`` builds the two derived inputs of every view
    (``DerivedInputDecoupler``: one frame repeated T times; the T - 1
    differences of adjacent frames); the shared ``backbone`` encodes each
    kind of input in one pass over all views (BatchNorm statistics per
    kind); global average pooling gives the features of the ``head``
    (``ConceptHead``: codes, ``loss_align_static``, ``loss_align_dynamic``,
    ``loss_sparsity``, ``loss_recon``), and the feature maps those of
    ``local_contrast`` (``LocalConceptContrast``: ``loss_local_static``
    between each clip and its static frame over the static concepts,
    ``loss_local_dynamic`` between each clip and its frame difference over
    the dynamic concepts, averaged over the views).

    There is no neck and no head per part (so not a :class:`BaseVCL`); the
    training step, the post-step updates (``AfterOptimStepHook``),
    ``extract_feat`` and the ``forward`` modes are :class:`BaseVideoSSL`'s.
    One view per video is enough: a clip and its static frame (or frame
    difference) already form a pair. Checkpoint keys: ``backbone.*``,
    ``head.*``, ``local_contrast.*``.
    Single-level only: the decoupler has no lower-level loss.

    Args:
        backbone: Config of the backbone; its last stage must keep a
            ``(N, C, T, h, w)`` map.
        head: Config of the ``ConceptHead``.
        local_contrast: Config of the ``LocalConceptContrast``; None leaves
            the local contrast out (Table 4 ablations).
        decoupler: Config of a decoupler with ``derive(clips) ->
            {'static': ..., 'dynamic': ...}``. Defaults to
            ``dict(type='DerivedInputDecoupler')`` (random static frame).
        data_preprocessor: Config of the multi-view data preprocessor.
        init_cfg: Initialisation config.
    """
    min_views = 1

    def __init__(self,
                 backbone: dict,
                 head: dict,
                 local_contrast: Optional[dict] = None,
                 decoupler: dict = dict(type='DerivedInputDecoupler'),
                 data_preprocessor: Optional[dict] = None,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(
            backbone,
            decoupler,
            data_preprocessor=data_preprocessor,
            init_cfg=init_cfg)
        if not callable(getattr(self.decoupler, 'derive', None)):
            raise ValueError(
                f'StaticDynamicConcepts needs a decoupler that derives the '
                f'static and dynamic inputs (derive(clips)), e.g. '
                f"DerivedInputDecoupler; got {type(self.decoupler).__name__}")
        self.head = MODELS.build(head)
        self.local_contrast = (
            MODELS.build(local_contrast) if local_contrast else None)

    @property
    def needs_post_step_updates(self) -> bool:
        return True

    def feature_map(self, clips: Tensor) -> Tensor:
        """``clips (B, C, T_in, H, W)`` -> the backbone's last feature map
        ``(B, C', T, h, w)``."""
        feats = self.backbone(clips)
        if isinstance(feats, (tuple, list)):
            if len(feats) != 1:
                raise ValueError(
                    f'StaticDynamicConcepts takes one feature map, got '
                    f"{len(feats)}; set the backbone's out_indices to its "
                    'last stage')
            feats = feats[0]
        if feats.dim() != 5:
            raise ValueError(f'StaticDynamicConcepts needs backbone feature '
                             f'maps (N, C, T, h, w), got {tuple(feats.shape)}')
        return feats

    def input_maps(self, views: List[Tensor]) -> Dict[str, Tensor]:
        """Feature maps of every input kind: ``{kind: (V, N, C, T, h, w)}``
        (one backbone pass per kind)."""
        derived = [self.decoupler.derive(view) for view in views]
        inputs = {
            'video': views,
            'static': [d['static'] for d in derived],
            'dynamic': [d['dynamic'] for d in derived]
        }
        return {
            kind: encode_views(self.feature_map, inputs[kind])
            for kind in INPUT_KINDS
        }

    def loss(self, inputs: List[Tensor],
             data_samples: Optional[list] = None) -> Dict[str, Tensor]:
        """Concept alignment, bottleneck and (after the warm-up) local
        contrast losses of V >= 1 views ``(N, C, T_in, H, W)``."""
        self._check_views(inputs)
        self._check_post_step_updates()
        maps = self.input_maps(list(inputs))
        pooled = {kind: m.mean(dim=(3, 4, 5)) for kind, m in maps.items()}
        codes = self.head.codes(pooled)
        losses = self.head.loss(pooled, codes)
        if self.local_contrast is not None:
            losses.update(self.local_losses(maps, codes))
        return losses

    def local_losses(self, maps: Dict[str, Tensor],
                     codes: Dict[str, Tensor]) -> Dict[str, Tensor]:
        """Local contrast of every clip with its static frame (static
        concepts) and its frame difference (dynamic concepts), averaged over
        the views; ``{}`` during the warm-up."""
        split = self.head.num_static
        groups = {'static': slice(0, split), 'dynamic': slice(split, None)}
        num_views = maps['video'].shape[0]
        totals: Dict[str, Tensor] = {}
        for kind, concepts in groups.items():
            prototypes = {
                k: self.head.prototype_weights(k)[concepts]
                for k in ('video', kind)
            }
            for view in range(num_views):
                first, second = (ConceptInput(maps[k][view], prototypes[k],
                                              codes[k][view][:, concepts])
                                 for k in ('video', kind))
                out = self.local_contrast.loss(kind, first, second)
                for key, value in out.items():
                    totals[key] = totals.get(key, 0) + value / num_views
        return totals

    def _probe_parts(self, clips: Tensor,
                     features: Tensor) -> Dict[str, Tensor]:
        """The clip's concept code (eq. 3), the global representation the
        paper's Table 3 probes: ``unified`` all ``K_s + K_d`` concepts,
        ``static`` the first ``K_s``, ``dynamic`` the rest."""
        pooled = features.flatten(2).mean(-1)
        codes = concept_scores(self.head.projectors['video'](pooled),
                               self.head.prototype_weights('video'))
        split = self.head.num_static
        return dict(unified=codes, static=codes[:, :split],
                    dynamic=codes[:, split:])

    def after_optim_step(self) -> None:
        """Renormalise the prototypes and count the step."""
        super().after_optim_step()
        self.head.after_optim_step()
