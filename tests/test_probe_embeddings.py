"""``probe_embeddings``, the evaluation embeddings every algorithm exposes
to linear probes, on every algorithm x decoupler: the documented names and
shapes, finite values, no gradients, no change to the model, and each part
being what its docstring says."""
import pytest
import torch

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from mmbodvcl.functional.derived_inputs import (draw_frame_index,
                                                frame_difference_clip,
                                                static_frame_clip)
from test_algorithms import BACKBONE_OUT, EMBED
from test_algorithms import model_cfg as vcl_cfg
from test_static_dynamic_concepts import BACKBONE_OUT as CONCEPTS_OUT
from test_static_dynamic_concepts import model_cfg as concepts_cfg

N, T, SIZE = 3, 4, 32
DECOUPLERS = {
    'none': (None, ()),
    'koopman': (dict(type='KoopmanDecoupler'), ('static', 'dynamic')),
    'koopman_unified_contrast': (dict(type='KoopmanDecoupler',
                                      contrast='unified'), ()),
    'derived_inputs': (dict(type='DerivedInputDecoupler',
                            grayscale_difference=True),
                       ('static', 'dynamic')),
}


pytestmark = pytest.mark.usefixtures('mmaction_scope')


def _build(cfg: dict) -> torch.nn.Module:
    torch.manual_seed(0)
    model = MODELS.build(cfg)
    model.init_weights()
    return model.train()


def _clips() -> torch.Tensor:
    return torch.randn(N, 3, T, SIZE, SIZE,
                       generator=torch.Generator().manual_seed(1))


def _check_common(model, clips, embeddings):
    """Finite, no graph, the training mode and every buffer and parameter
    unchanged, and the same values a second time (no randomness)."""
    assert model.training
    for name, value in embeddings.items():
        assert value.shape[0] == N and value.dim() == 2, name
        assert torch.isfinite(value).all(), name
        assert not value.requires_grad, name
    before = {k: v.clone() for k, v in model.state_dict().items()}
    again = model.probe_embeddings(clips)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key
    for name, value in embeddings.items():
        assert torch.equal(again[name], value), name


@pytest.mark.parametrize('decoupler', list(DECOUPLERS))
@pytest.mark.parametrize('algorithm', ['VSimCLR', 'VMoCo', 'VBYOL', 'VSwAV'])
def test_vcl_algorithms_expose_backbone_unified_and_parts(
        algorithm, decoupler):
    decoupler_cfg, parts = DECOUPLERS[decoupler]
    model = _build(vcl_cfg(algorithm, False, decoupler=decoupler_cfg))
    clips = _clips()
    embeddings = model.probe_embeddings(clips)
    assert set(embeddings) == {'backbone', 'unified', *parts}
    assert embeddings['backbone'].shape == (N, BACKBONE_OUT)
    for name in ('unified', *parts):
        assert embeddings[name].shape == (N, EMBED)
    _check_common(model, clips, embeddings)
    model.eval()
    with torch.no_grad():
        features = model.backbone(clips)
        z = model.neck(features)  # (N, M, T)
        # backbone: features averaged over time and space; unified: Z
        torch.testing.assert_close(embeddings['backbone'],
                                   features.mean(dim=(2, 3, 4)))
        torch.testing.assert_close(embeddings['unified'], z.mean(-1))
        if decoupler == 'koopman':  # Z_A + Z_M = Z (projector split)
            torch.testing.assert_close(
                embeddings['static'] + embeddings['dynamic'],
                embeddings['unified'], atol=1e-4, rtol=1e-4)
            split = model.decoupler.split(z)
            torch.testing.assert_close(embeddings['static'], split.static)
        if decoupler == 'derived_inputs':  # a frame repeated; differences
            middle = draw_frame_index(clips, 'middle')
            torch.testing.assert_close(
                embeddings['static'],
                model.encode(static_frame_clip(clips, middle)).mean(-1))
            torch.testing.assert_close(
                embeddings['dynamic'],
                model.encode(frame_difference_clip(clips, True)).mean(-1))


def test_concepts_expose_the_clips_concept_codes():
    model = _build(concepts_cfg())
    clips = _clips()
    embeddings = model.probe_embeddings(clips)
    assert set(embeddings) == {'backbone', 'unified', 'static', 'dynamic'}
    head = model.head
    assert embeddings['backbone'].shape == (N, CONCEPTS_OUT)
    assert embeddings['unified'].shape == (N, head.num_static +
                                           head.num_dynamic)
    assert embeddings['static'].shape == (N, head.num_static)
    assert embeddings['dynamic'].shape == (N, head.num_dynamic)
    _check_common(model, clips, embeddings)
    # the clip's codes (cosine similarities), static concepts first, as the
    # head computes them for the clip in training
    codes = embeddings['unified']
    assert codes.abs().max() <= 1 + 1e-5
    torch.testing.assert_close(
        torch.cat([embeddings['static'], embeddings['dynamic']], 1), codes)
    model.eval()
    with torch.no_grad():
        pooled = model.feature_map(clips).mean(dim=(2, 3, 4))[None]
        expected = model.head.codes(
            dict(video=pooled, static=pooled, dynamic=pooled))['video'][0]
    torch.testing.assert_close(codes, expected)
