"""The analysis tools (tools/analysis/) write their figures and tables from a
small checkpoint of a real pretraining model, reading real generated videos
with decord; their mathematics is checked on inputs with known answers."""
import csv
import os.path as osp

import matplotlib.image as mpimg
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import MODELS
from mmbodvcl.apis.analysis import (build_clip_pipeline, build_normaliser,
                                    clip_tensor, load_config)
from helpers import load_script, make_video_dataset

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
TOOLS = osp.join(REPO, 'tools', 'analysis')
CONFIG = osp.join(REPO, 'configs/bodvcl/vsimclr_slowr50_k400.py')
# A narrow Slow-R18 instead of Slow-R50, so the test stays fast.
TINY = {
    'model.backbone.depth': 18,
    'model.backbone.base_channels': 8,
    'model.neck.in_channels': 64,
    'model.neck.hid_channels': 32,
}
TINY_ARGS = [f'{key}={value}' for key, value in TINY.items()]
# 8 frames at interval 2 from 24-frame videos, 32 px crops.
CLIP = ['--clip-len', '8', '--frame-interval', '2', '--short-side', '48',
        '--crop-size', '32']


def load_tool(name: str):
    return load_script(osp.join(TOOLS, f'{name}.py'))


pytestmark = pytest.mark.usefixtures('mmaction_scope')


@pytest.fixture(scope='module')
def videos(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('videos'))
    return make_video_dataset(root, num_videos=3, num_frames=24,
                              size=(48, 64))


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory) -> str:
    """A checkpoint of the tiny V-SimCLR + BOD-VCL model, as the Runner
    saves them (``state_dict`` and ``meta``)."""
    init_default_scope('mmaction')
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(TINY)
    model = MODELS.build(cfg.model)
    model.init_weights()
    path = osp.join(str(tmp_path_factory.mktemp('ckpt')), 'tiny.pth')
    torch.save(dict(state_dict=model.state_dict(), meta=dict()), path)
    return path


def read_csv(path: str):
    with open(path, newline='') as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------
# temporal distinctiveness (Fig. 11)
def test_similarity_matrix_and_lags_on_known_features():
    tool = load_tool('temporal_distinctiveness')
    # frames 0 and 1 identical, frame 2 orthogonal to both
    features = torch.tensor([[1., 1., 0.], [0., 0., 2.]])  # (C=2, T=3)
    similarity = tool.cosine_similarity_matrix(features)
    expected = torch.tensor([[1., 1., 0.], [1., 1., 0.], [0., 0., 1.]])
    assert torch.allclose(similarity, expected)
    lags = tool.similarity_by_lag(similarity)
    assert torch.allclose(lags, torch.tensor([1., 0.5, 0.]))
    with pytest.raises(ValueError, match=r'frames \[1\]'):
        tool.cosine_similarity_matrix(torch.tensor([[1., 0.], [1., 0.]]))


def test_temporal_distinctiveness_writes_figures(videos, checkpoint,
                                                 tmp_path):
    tool = load_tool('temporal_distinctiveness')
    out = str(tmp_path / 'fig11')
    written = tool.main([
        CONFIG, checkpoint, videos, '--data-root', osp.dirname(videos),
        '--out-dir', out, '--num-examples', '2', '--cfg-options', *TINY_ARGS
    ] + CLIP)
    names = {osp.basename(p) for p in written}
    assert {'similarity_by_lag.csv', 'similarity_matrices.csv',
            'per_video_similarity_by_lag.csv', 'similarity_matrix_mean.png',
            'similarity_by_lag.png'} <= names
    assert sum(name.startswith('similarity_matrix_0') for name in names) == 2
    for path in written:
        assert osp.getsize(path) > 0
        if path.endswith('.png'):
            assert mpimg.imread(path).ndim == 3

    lags = read_csv(osp.join(out, 'similarity_by_lag.csv'))
    # Slow-R18 keeps the 8 input frames
    assert [int(row['lag']) for row in lags] == list(range(8))
    assert all(int(row['num_videos']) == 3 for row in lags)
    assert float(lags[0]['mean']) == pytest.approx(1.0, abs=1e-5)
    assert all(-1 - 1e-6 <= float(row['mean']) <= 1 + 1e-6 for row in lags)
    cells = read_csv(osp.join(out, 'similarity_matrices.csv'))
    assert len(cells) == 3 * 8 * 8
    matrix = {(r['video'], int(r['i']), int(r['j'])): float(r['similarity'])
              for r in cells}
    for (video, i, j), value in matrix.items():
        assert value == pytest.approx(matrix[(video, j, i)], abs=1e-5)


def test_temporal_distinctiveness_names_a_missing_video(checkpoint, videos,
                                                        tmp_path):
    tool = load_tool('temporal_distinctiveness')
    video_list = tmp_path / 'list.txt'
    video_list.write_text('video_000.mp4 0\nmissing.mp4 1\n')
    with pytest.raises(FileNotFoundError, match=r'list.txt:2.*missing.mp4'):
        tool.main([
            CONFIG, checkpoint, str(video_list), '--data-root',
            osp.dirname(videos), '--out-dir', str(tmp_path / 'out'),
            '--cfg-options', *TINY_ARGS
        ] + CLIP)


# ---------------------------------------------------------------------------
# Koopman spectrum (Fig. 4)
def test_mode_amplitudes_of_a_known_linear_system():
    tool = load_tool('koopman_spectrum')
    # z_t = K^t z_0 in M = 6 dimensions with eigenvalues 1 and 0.5 on a
    # random (non-orthogonal) basis: the lambda = 1 mode keeps its
    # amplitude, the other halves every frame.
    generator = torch.Generator().manual_seed(0)
    basis = torch.randn(6, 2, generator=generator, dtype=torch.float64)
    coefficients = torch.tensor([[3.0], [2.0]], dtype=torch.float64)
    z = torch.cat([
        basis @ (torch.tensor([[1.0], [0.5**t]], dtype=torch.float64) *
                 coefficients) for t in range(6)
    ], dim=1)[None]  # (1, M, T)
    coords, eigvals = tool.mode_amplitudes(z)
    order = (eigvals - 1).abs().argsort()
    assert torch.allclose(eigvals[order][:2].real,
                          torch.tensor([1.0, 0.5], dtype=torch.float64),
                          atol=1e-8)
    amplitudes = coords[order].abs()
    assert torch.allclose(amplitudes[0], amplitudes[0, :1].expand(6),
                          rtol=1e-8)
    ratios = amplitudes[1, 1:] / amplitudes[1, :-1]
    assert torch.allclose(ratios, torch.full_like(ratios, 0.5), rtol=1e-8)


def test_koopman_spectrum_writes_figures(videos, checkpoint, tmp_path):
    tool = load_tool('koopman_spectrum')
    out = str(tmp_path / 'fig4')
    written = tool.main([
        CONFIG, checkpoint, videos, '--data-root', osp.dirname(videos),
        '--out-dir', out, '--num-examples', '1', '--num-modes', '4',
        '--cfg-options', *TINY_ARGS
    ] + CLIP)
    names = {osp.basename(p) for p in written}
    assert {'eigenvalues.png', 'eigenvalues.csv',
            'mode_amplitudes.csv'} <= names
    assert sum(name.startswith('mode_amplitudes_0') for name in names) == 1
    for path in written:
        if path.endswith('.png'):
            assert mpimg.imread(path).ndim == 3

    rows = read_csv(osp.join(out, 'eigenvalues.csv'))
    assert {row['video'] for row in rows} == {
        osp.join(osp.dirname(videos), f'video_{i:03d}.mp4')
        for i in range(3)
    }
    for row in rows:
        value = complex(float(row['real']), float(row['imag']))
        assert np.isfinite(value)
        assert float(row['distance_to_1']) == pytest.approx(
            abs(value - 1), abs=1e-5)
        assert int(row['static']) == int(abs(value - 1) < 0.1)
    amplitudes = read_csv(osp.join(out, 'mode_amplitudes.csv'))
    assert len(amplitudes) == 4 * 8  # 4 modes x 8 frames of one video
    assert all(float(row['amplitude']) >= 0 for row in amplitudes)


def test_koopman_spectrum_refuses_a_model_without_per_frame_encoder(
        videos, tmp_path):
    tool = load_tool('koopman_spectrum')
    config = osp.join(REPO, 'tests/configs/tiny_recognizer3d.py')
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)
    path = str(tmp_path / 'recognizer.pth')
    torch.save(dict(state_dict=model.state_dict()), path)
    with pytest.raises(TypeError, match='no per-frame encoder'):
        tool.main([config, path, videos, '--data-root', osp.dirname(videos),
                   '--out-dir', str(tmp_path / 'out')] + CLIP)


# ---------------------------------------------------------------------------
# Grad-CAM (Fig. 8)
def test_gradcam_writes_a_figure(videos, checkpoint, tmp_path):
    tool = load_tool('gradcam')
    video = osp.join(osp.dirname(videos), 'video_001.mp4')
    out = str(tmp_path / 'fig8')
    written = tool.main([
        CONFIG, checkpoint, video, '--out-dir', out, '--cfg-options',
        *TINY_ARGS
    ] + CLIP)
    assert [osp.basename(p) for p in written] == ['gradcam_video_001.png']
    image = mpimg.imread(written[0])
    assert image.ndim == 3 and image.shape[1] > image.shape[0]


def test_gradcam_recognizer_uses_the_checkpoint_backbone(videos, checkpoint):
    tool = load_tool('gradcam')
    cfg = load_config(CONFIG, TINY)
    pipeline = build_clip_pipeline(8, 2, 48, 32)
    video = osp.join(osp.dirname(videos), 'video_000.mp4')
    clip = clip_tensor(video, pipeline, build_normaliser(cfg), 'cpu')
    recognizer = tool.recognizer_from_pretraining(cfg, checkpoint, clip)
    saved = torch.load(checkpoint, map_location='cpu')['state_dict']
    for key, value in recognizer.backbone.state_dict().items():
        assert torch.equal(value, saved[f'backbone.{key}']), key
    # identity classifier: the scores are the pooled feature channels
    assert recognizer.cls_head.fc_cls.weight.shape == (64, 64)
    assert torch.equal(recognizer.cls_head.fc_cls.weight, torch.eye(64))


def test_gradcam_refuses_a_checkpoint_without_backbone(videos, tmp_path):
    tool = load_tool('gradcam')
    path = str(tmp_path / 'no_backbone.pth')
    torch.save(dict(state_dict=dict(head=torch.zeros(1))), path)
    video = osp.join(osp.dirname(videos), 'video_000.mp4')
    with pytest.raises(ValueError,
                       match=r"no_backbone.pth: no key starts with "
                       r"'backbone.'.*\['head'\]"):
        tool.main([CONFIG, path, video, '--out-dir', str(tmp_path / 'out'),
                   '--cfg-options', *TINY_ARGS] + CLIP)
