"""Downstream configs, backbone extraction and Static/Dynamic UCF-101.

Every config under configs/downstream/ is built by MMEngine's Runner on
small generated data in its dataset's format, loads a pretraining checkpoint
through tools/extract_backbone.py, and runs one training iteration, a
validation and a test; the AVA detector runs end to end through AVAMetric.
Only the spatial sizes and batch sizes are shrunk.
"""
import os.path as osp
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Dict, List

import cv2
import decord
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import HistoryBuffer
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmaction
import mmbodvcl  # noqa: F401  (compat fixes, registration)
from mmaction.registry import MODELS
from helpers import load_script, make_video, make_video_dataset

# Backbones built outside a Runner find layers such as ``Conv2plus1d``
# through the default scope, as a Runner built from these configs does.
init_default_scope('mmaction')

ROOT = Path(__file__).resolve().parents[1]
CONFIG_ROOT = ROOT / 'configs' / 'downstream'
EXTRACT_TOOL = ROOT / 'tools' / 'extract_backbone.py'
STATIC_DYNAMIC_TOOL = ROOT / 'tools' / 'data' / 'build_static_dynamic_ucf.py'
AVA_CONFIG = CONFIG_ROOT / 'ava' / 'slowonly_r50_8x8x1_ava21.py'
RECOGNITION_CONFIGS = sorted(
    path for path in CONFIG_ROOT.glob('*/*.py')
    if path.parent.name not in ('_base_', 'ava', 'retrieval'))
# Test-only configs (no training), run by tests/test_evaluation_monitors.py.
RETRIEVAL_CONFIGS = sorted(CONFIG_ROOT.glob('retrieval/*.py'))
MMACTION_CONFIGS = osp.join(osp.dirname(mmaction.__file__), '.mim', 'configs')
STOCK_K400_CONFIG = osp.join(
    MMACTION_CONFIGS, 'recognition', 'slowonly',
    'slowonly_r50_8xb16-8x8x1-256e_kinetics400-rgb.py')
STOCK_AVA_CONFIG = osp.join(
    MMACTION_CONFIGS, 'detection', 'slowonly',
    'slowonly_kinetics400-pretrained-r50_8xb16-4x16x1-20e_ava21-rgb.py')


def run_tool(monkeypatch, path: Path, *args: str) -> None:
    """Run a tool's ``main`` in this process, as its command line would."""
    monkeypatch.setattr(sys, 'argv', [str(path), *map(str, args)])
    load_script(str(path)).main()


def save_pretraining_checkpoint(backbone: torch.nn.Module,
                                path: str) -> Dict[str, torch.Tensor]:
    """An MMEngine-style pretraining checkpoint: the encoder (perturbed, so
    that loading is visible) under ``backbone.``, a neck, and a message hub
    with a ``HistoryBuffer``. Returns the encoder's expected weights."""
    generator = torch.Generator().manual_seed(0)
    encoder = {}
    for key, value in backbone.state_dict().items():
        if value.is_floating_point():
            # A relative change: visible, yet a working network.
            value = value * (1 + 0.05 * torch.randn(
                value.shape, generator=generator))
        encoder[key] = value.clone()
    state_dict = {f'backbone.{k}': v for k, v in encoder.items()}
    state_dict['neck.projection.weight'] = torch.randn(8, 4)
    loss_history = HistoryBuffer()
    loss_history.update(0.5)
    torch.save(
        dict(
            meta=dict(epoch=200, iter=1000),
            state_dict=state_dict,
            message_hub=dict(log_scalars={'train/loss': loss_history})),
        path)
    return encoder


def shrink_pipeline(pipeline: List[dict]) -> None:
    """Frames of 32-40 px instead of 112-320 px, nothing else changed."""
    for step in pipeline:
        kind = step['type']
        if kind == 'Resize':
            step['scale'] = (-1, 40) if step['scale'][0] == -1 else (32, 32)
        elif kind in ('CenterCrop', 'ThreeCrop'):
            step['crop_size'] = 32
        elif kind == 'RandomCrop':
            step['size'] = 32
        elif kind == 'RandomRescale':
            step['scale_range'] = (40, 48)


def prepare_runner_cfg(cfg: Config, work_dir: str, load_from: str,
                       data: Dict[str, Dict[str, str]]) -> None:
    """Point every dataloader at ``data`` and make the schedule one epoch."""
    cfg.work_dir = work_dir
    cfg.load_from = load_from
    cfg.log_level = 'WARNING'
    cfg.default_hooks.checkpoint = None
    cfg.default_hooks.logger.interval = 1
    cfg.train_cfg.update(max_epochs=1, val_begin=1, val_interval=1)
    cfg.train_dataloader.batch_size = 2  # val/test keep theirs (AVA: 1)
    for split in ('train', 'val', 'test'):
        loader = cfg[f'{split}_dataloader']
        loader.update(num_workers=0, persistent_workers=False)
        loader.dataset.update(data[split])
        shrink_pipeline(loader.dataset.pipeline)


class RecordRun(Hook):
    """Keeps the encoder's weights right after loading, every metric and
    the predictions of the last validation and of the test."""

    def before_train(self, runner) -> None:
        model = getattr(runner.model, 'module', runner.model)
        self.loaded = {
            k: v.clone()
            for k, v in model.backbone.state_dict().items()
        }
        self.losses: List[float] = []
        self.predictions: Dict[str, list] = dict(val=[], test=[])

    def before_val_epoch(self, runner) -> None:
        self.predictions['val'] = []

    def after_val_iter(self, runner, batch_idx, data_batch=None,
                       outputs=None) -> None:
        self.predictions['val'].extend(outputs)

    def after_test_iter(self, runner, batch_idx, data_batch=None,
                        outputs=None) -> None:
        self.predictions['test'].extend(outputs)

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None) -> None:
        self.losses.append(outputs['loss'].item())

    def after_val_epoch(self, runner, metrics=None) -> None:
        self.val_metrics = metrics


def assert_same_weights(actual: Dict[str, torch.Tensor],
                        expected: Dict[str, torch.Tensor]) -> None:
    assert set(actual) == set(expected), (
        f'missing: {sorted(set(expected) - set(actual))[:5]}, unexpected: '
        f'{sorted(set(actual) - set(expected))[:5]}')
    for key, value in expected.items():
        assert torch.equal(actual[key], value), key


@pytest.fixture(scope='module')
def video_data(tmp_path_factory) -> Dict[str, str]:
    root = str(tmp_path_factory.mktemp('videos'))
    ann_file = make_video_dataset(root, num_videos=2, num_classes=2,
                                  num_frames=24, size=(48, 64))
    return dict(ann_file=ann_file, data_prefix=dict(video=root))


@pytest.fixture(scope='module')
def dynamic_data(tmp_path_factory, video_data) -> Dict[str, str]:
    out_root = str(tmp_path_factory.mktemp('dynamic'))
    subprocess.run([
        sys.executable,
        str(STATIC_DYNAMIC_TOOL), 'dynamic', '--video-root',
        video_data['data_prefix']['video'], '--ann-files',
        video_data['ann_file'], '--out-root', out_root
    ], check=True)
    return dict(ann_file=osp.join(out_root, 'ann.txt'),
                data_prefix=dict(img=osp.join(out_root, 'rawframes')))


def test_every_config_is_tested():
    leaves = sorted(CONFIG_ROOT.glob('*/*.py'))
    tested = RECOGNITION_CONFIGS + RETRIEVAL_CONFIGS + [AVA_CONFIG]
    assert sorted(p for p in leaves if p.parent.name != '_base_') == sorted(
        tested)
    assert len(RECOGNITION_CONFIGS) >= 20


@pytest.mark.parametrize(
    'config', RECOGNITION_CONFIGS, ids=lambda p: f'{p.parent.name}/{p.stem}')
def test_recognition_config_trains_and_tests(config, video_data, dynamic_data,
                                             tmp_path, monkeypatch):
    cfg = Config.fromfile(str(config))
    assert cfg.load_from, f'{config} must take the pretrained checkpoint'
    is_linear = cfg.model.backbone.get('frozen_stages', -1) > 0
    backbone = MODELS.build(cfg.model.backbone)
    pretrain = str(tmp_path / 'pretrain.pth')
    extracted = str(tmp_path / 'extracted.pth')
    encoder = save_pretraining_checkpoint(backbone, pretrain)
    run_tool(monkeypatch, EXTRACT_TOOL, pretrain, extracted)

    data = dynamic_data if cfg.train_dataloader.dataset.type == \
        'RawframeDataset' else video_data
    prepare_runner_cfg(cfg, str(tmp_path / 'work'), extracted,
                       dict(train=data, val=data, test=data))
    runner = Runner.from_cfg(cfg)
    record = RecordRun()
    runner.register_hook(record, priority='LOWEST')
    runner.train()
    test_metrics = runner.test()

    assert_same_weights(record.loaded, encoder)
    assert len(record.losses) == 1 and np.isfinite(record.losses).all()
    for split, metrics in (('val', record.val_metrics),
                           ('test', test_metrics)):
        # top-1 accuracy is the share of videos whose highest score is
        # their label, recounted here from the predictions the model made.
        samples = record.predictions[split]
        assert len(samples) == len(runner.test_dataloader.dataset)
        correct = [
            int(s.pred_score.argmax()) == int(s.gt_label) for s in samples
        ]
        assert metrics['acc/top1'] == pytest.approx(np.mean(correct))
    if is_linear:  # the encoder stays frozen, BN statistics included
        model = runner.model
        assert_same_weights(model.backbone.state_dict(), encoder)
        trainable = {n for n, p in model.named_parameters() if p.requires_grad}
        assert trainable == {'cls_head.fc_cls.weight', 'cls_head.fc_cls.bias'}


@pytest.mark.parametrize('split', ['1', '2', '3'])
def test_split_comes_from_environment(split, monkeypatch):
    monkeypatch.setenv('SPLIT', split)
    cfg = Config.fromfile(
        str(CONFIG_ROOT / 'hmdb51_finetune' /
            'r3d_18_16x4x1_112_ft_hmdb51.py'))
    assert cfg.train_dataloader.dataset.ann_file == (
        f'data/hmdb51/hmdb51_train_split_{split}_videos.txt')
    assert cfg.test_dataloader.dataset.ann_file == (
        f'data/hmdb51/hmdb51_val_split_{split}_videos.txt')


def test_bad_split_is_refused(monkeypatch):
    monkeypatch.setenv('SPLIT', '4')
    with pytest.raises(ValueError, match="SPLIT must be 1, 2 or 3.*'4'"):
        Config.fromfile(
            str(CONFIG_ROOT / 'ucf101_finetune' /
                's3dg_16x4x1_112_ft_ucf101.py'))


def test_extracted_backbone_loads_into_stock_configs(tmp_path, monkeypatch):
    """A Slow-R50 pretraining checkpoint loads into MMAction2's own K400
    recogniser (both ``backbone.pretrained`` and ``load_from`` formats) and
    its AVA detector, with no missing backbone key."""
    stock = Config.fromfile(STOCK_K400_CONFIG)
    stock.model.backbone.pretrained = None
    recognizer = MODELS.build(stock.model)
    pretrain = str(tmp_path / 'pretrain.pth')
    encoder = save_pretraining_checkpoint(recognizer.backbone, pretrain)

    backbone_only = str(tmp_path / 'backbone_only.pth')
    run_tool(monkeypatch, EXTRACT_TOOL, pretrain, backbone_only, '--format',
             'backbone')
    keys = torch.load(backbone_only)['state_dict'].keys()
    assert set(keys) == set(encoder)
    stock.model.backbone.update(pretrained=backbone_only, pretrained2d=False)
    recognizer = MODELS.build(stock.model)
    recognizer.init_weights()
    assert_same_weights(recognizer.backbone.state_dict(), encoder)

    with_prefix = str(tmp_path / 'recognizer.pth')
    run_tool(monkeypatch, EXTRACT_TOOL, pretrain, with_prefix)
    state_dict = torch.load(with_prefix)['state_dict']
    assert all(key.startswith('backbone.') for key in state_dict)
    ava = Config.fromfile(STOCK_AVA_CONFIG)
    ava.model.init_cfg = None
    detector = MODELS.build(ava.model)
    missing, _ = detector.load_state_dict(state_dict, strict=False)
    assert not [key for key in missing if key.startswith('backbone.')]
    assert_same_weights(detector.backbone.state_dict(), encoder)


def test_extract_refuses_checkpoint_without_backbone(tmp_path):
    source = str(tmp_path / 'no_backbone.pth')
    torch.save(dict(state_dict={'encoder.conv.weight': torch.zeros(1)}),
               source)
    result = subprocess.run(
        [sys.executable,
         str(EXTRACT_TOOL), source,
         str(tmp_path / 'out.pth')],
        capture_output=True,
        text=True)
    assert result.returncode != 0
    assert "no key starts with 'backbone.'" in result.stderr
    assert "['encoder']" in result.stderr and source in result.stderr
    assert not osp.exists(tmp_path / 'out.pth')


def write_ava_fixture(root: Path) -> Dict[str, str]:
    """An AVA-format video: rawframes at 30 fps around timestamps 902-903,
    annotation/exclusion CSVs, FAIR-style proposals and a label map."""
    rng = np.random.default_rng(0)
    videos, timestamps, num_frames = ['vid_a'], [902, 903], 130
    for index, video in enumerate(videos):
        make_video(str(root / f'{video}.mp4'), num_frames=num_frames,
                   size=(48, 64), seed=index)
        frames = decord.VideoReader(str(root / f'{video}.mp4'))
        frame_dir = root / 'rawframes' / video
        frame_dir.mkdir(parents=True)
        for t in range(num_frames):
            cv2.imwrite(str(frame_dir / f'img_{t + 1:05d}.jpg'),
                        frames[t].asnumpy()[..., ::-1])
    rows, proposals = [], {}
    for video in videos:
        for ts in timestamps:
            box = np.array([0.1, 0.2, 0.5, 0.9])
            rows.append(f'{video},{ts},' + ','.join(f'{v:.3f}' for v in box) +
                        f',{1 + (ts % 2)},0')
            rows.append(f'{video},{ts},0.500,0.100,0.900,0.800,3,1')
            noisy = np.clip(box + rng.normal(0, 0.02, 4), 0, 1)
            proposals[f'{video},{ts:04d}'] = np.array(
                [[*noisy, 0.98], [0.5, 0.1, 0.9, 0.8, 0.95]], np.float32)
    paths = dict(
        ann=root / 'ava_v2.1.csv',
        exclude=root / 'ava_excluded_timestamps_v2.1.csv',
        label=root / 'ava_action_list_v2.1.pbtxt',
        proposals=root / 'ava_dense_proposals.FAIR.recall_93.9.pkl')
    paths['ann'].write_text('\n'.join(rows) + '\n')
    paths['exclude'].write_text('')
    paths['label'].write_text(''.join(
        f'item {{\n  name: "{name}"\n  id: {i}\n}}\n'
        for i, name in enumerate(['bend/bow', 'crouch/kneel', 'sit'], 1)))
    with open(paths['proposals'], 'wb') as f:
        pickle.dump(proposals, f)
    return {key: str(value) for key, value in paths.items()}


def test_ava_finetune_end_to_end(tmp_path, monkeypatch):
    paths = write_ava_fixture(tmp_path / 'ava')
    cfg = Config.fromfile(str(AVA_CONFIG))
    assert cfg.model.init_cfg is None
    backbone = MODELS.build(cfg.model.backbone)
    encoder = save_pretraining_checkpoint(backbone,
                                          str(tmp_path / 'pretrain.pth'))
    extracted = str(tmp_path / 'extracted.pth')
    run_tool(monkeypatch, EXTRACT_TOOL, tmp_path / 'pretrain.pth', extracted)

    data = dict(
        ann_file=paths['ann'],
        exclude_file=paths['exclude'],
        label_file=paths['label'],
        proposal_file=paths['proposals'],
        data_prefix=dict(img=str(tmp_path / 'ava' / 'rawframes')))
    prepare_runner_cfg(cfg, str(tmp_path / 'work'), extracted,
                       dict(train=data, val=data, test=data))
    for evaluator in (cfg.val_evaluator, cfg.test_evaluator):
        evaluator.update(ann_file=paths['ann'], exclude_file=paths['exclude'],
                         label_file=paths['label'])
    monkeypatch.chdir(tmp_path)  # AVAMetric writes its CSV to the cwd
    runner = Runner.from_cfg(cfg)
    record = RecordRun()
    runner.register_hook(record, priority='LOWEST')
    runner.train()
    test_metrics = runner.test()

    assert_same_weights(record.loaded, encoder)
    assert len(record.losses) == 1 and np.isfinite(record.losses).all()
    # Every ground-truth box has a proposal over it (IoU ~0.9 or exact), so
    # detections that reach the metric at the right scale match and give a
    # positive AP to some class; how much depends on how the untrained head
    # (a fresh initialisation each run) scores and thresholds them (0.125
    # and values above 1/3 seen). Boxes mis-scaled on the way to the metric
    # (normalised vs pixel coordinates) match nothing and score exactly 0.
    for metrics in (record.val_metrics, test_metrics):
        assert 0 < metrics['mAP/overall'] <= 1.0


def neighbour_correlation(frame: np.ndarray) -> float:
    grey = frame.astype(np.float64).mean(axis=2)
    return float(np.corrcoef(grey[:, :-1].ravel(), grey[:, 1:].ravel())[0,
                                                                        1])


def test_static_and_dynamic_ucf(tmp_path):
    source_root = tmp_path / 'ucf101'
    ann_file = make_video_dataset(str(source_root), num_videos=2,
                                  num_frames=12, size=(64, 80),
                                  ann_name='ucf101_train_split_1_videos.txt')
    for mode in ('static', 'dynamic'):
        subprocess.run([
            sys.executable,
            str(STATIC_DYNAMIC_TOOL), mode, '--video-root',
            str(source_root), '--ann-files', ann_file, '--out-root',
            str(tmp_path / mode)
        ], check=True)

    # Static: the middle frame, constant through a clip as long as the video.
    static_list = (tmp_path / 'static' /
                   'ucf101_train_split_1_videos.txt').read_text().split('\n')
    assert static_list[:2] == ['video_000.mp4 0', 'video_001.mp4 1']
    source = decord.VideoReader(str(source_root / 'video_000.mp4'))
    source = source.get_batch(list(range(len(source)))).asnumpy()
    static = decord.VideoReader(str(tmp_path / 'static' / 'videos' /
                                    'video_000.mp4'))
    static = static.get_batch(list(range(len(static)))).asnumpy().astype(int)
    assert len(static) == len(source) == 12
    assert np.abs(static - static[0]).max() <= 2  # codec noise only
    assert np.abs(static[0] - source[6].astype(int)).mean() < 3
    assert np.abs(static[0] - source[0].astype(int)).mean() > 3

    # Dynamic: lossless rawframes of noise, listed for RawframeDataset.
    dynamic_list = (tmp_path / 'dynamic' /
                    'ucf101_train_split_1_rawframes.txt').read_text()
    assert dynamic_list.split('\n')[:2] == ['video_000 12 0', 'video_001 12 1']
    frame_dir = tmp_path / 'dynamic' / 'rawframes' / 'video_000'
    dynamic = np.stack([
        cv2.imread(str(frame_dir / f'img_{t:05d}.png'))[..., ::-1]
        for t in range(1, 13)
    ])
    # A single frame has no appearance. Frame 0 is i.i.d. uniform noise:
    # its sample correlations over n pixel pairs are ~ N(0, 1 / n), so
    # 4 / sqrt(n) (4 standard deviations; 0.06 at 64 x 80) bounds them.
    # Later frames are nearest-neighbour resamplings of it, where
    # neighbours copied from one pixel (the flow compressing the image)
    # add at most their share to the correlation.
    for t in (0, 11):
        bound = 4 / np.sqrt(dynamic[t][:, 1:].size / 3)
        copied = (dynamic[t][:, :-1] == dynamic[t][:, 1:]).all(-1).mean()
        assert abs(neighbour_correlation(dynamic[t])) < copied + bound
        # (the source is a flat background and one square: neighbours
        # differ only across the square's two edges, ~1 % of the pairs)
        assert neighbour_correlation(source[t]) > 0.5
        corr = np.corrcoef(dynamic[t].mean(2).ravel(),
                           source[t].mean(2).ravel())[0, 1]
        assert abs(corr) < 4 / np.sqrt(dynamic[t][..., 0].size)
    # Its motion is the source's: frame t is frame t - 1 moved along the
    # flow of the source (DIS, as the tool computes it) to the nearest
    # pixel, exactly, wherever the flow stays inside the image.
    flow = load_script(str(STATIC_DYNAMIC_TOOL)).dis_flow()
    height, width = source.shape[1:3]
    grid_y, grid_x = np.mgrid[0:height, 0:width]
    agree, moved = [], []
    for t in range(1, len(source)):
        backward = flow(source[t], source[t - 1])
        x = np.rint(grid_x + backward[..., 0]).astype(int)
        y = np.rint(grid_y + backward[..., 1]).astype(int)
        inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)
        same = (dynamic[t] == dynamic[t - 1][y.clip(0, height - 1),
                                             x.clip(0, width - 1)]).all(-1)
        agree.append(same[inside].mean())
        moved.append(((x != grid_x) | (y != grid_y))[inside].mean())
    # Displacements within rounding distance of a half pixel may round the
    # other way in OpenCV's fixed-point maps: 1 % of the pixels allowed.
    assert min(agree) > 0.99, agree
    # The square (side 16 of 64 x 80: 5 % of the frame) moves by 1-3 px per
    # frame, so the check above saw moving pixels in every frame pair.
    assert min(moved) > 0.01, moved


def test_dynamic_refuses_bad_annotation(tmp_path):
    ann = tmp_path / 'bad.txt'
    ann.write_text('video_000.mp4\n')
    result = subprocess.run([
        sys.executable,
        str(STATIC_DYNAMIC_TOOL), 'dynamic', '--video-root',
        str(tmp_path), '--ann-files',
        str(ann), '--out-root',
        str(tmp_path / 'out')
    ], capture_output=True, text=True)
    assert result.returncode != 0
    assert f'{ann}:1: expected "<video path> <label>"' in result.stderr
