"""Multi-view video data path on real generated videos decoded by decord."""
import copy
import os.path as osp
from typing import Dict, List

import decord
import numpy as np
import pytest
import torch
from mmengine.dataset import pseudo_collate
from mmengine.logging import MMLogger
from mmengine.model import BaseModel
from mmengine.runner import Runner

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import DATASETS, MODELS, TRANSFORMS
from mmbodvcl.datasets.transforms import (MultiViewDecordInit,
                                          MultiViewSampleFrames,
                                          VideoColorJitter, VideoReadError,
                                          VideoTooShortError)
from helpers import (make_corrupt_video, make_video, make_video_dataset,
                     multiview_pretrain_pipeline)

MEAN = (123.675, 116.28, 103.53)
STD = (58.395, 57.12, 57.375)
CLIP_LEN, INTERVAL, SIZE = 4, 2, 32


class CountingVideoReader(decord.VideoReader):
    """decord's reader, counting its ``get_batch`` calls."""

    batches: List[List[int]] = []

    def get_batch(self, indices):
        CountingVideoReader.batches.append(list(indices))
        return super().get_batch(indices)


@TRANSFORMS.register_module(force=True)
class CountingDecordInit(MultiViewDecordInit):

    def _get_video_reader(self, filename: str) -> CountingVideoReader:
        return CountingVideoReader(filename, num_threads=self.num_threads)


pytestmark = pytest.mark.usefixtures('mmaction_scope')


@pytest.fixture(scope='module')
def video_root(tmp_path_factory) -> str:
    root = str(tmp_path_factory.mktemp('videos'))
    make_video_dataset(root, num_videos=4, num_frames=24, size=(48, 64))
    return root


def pipeline(num_views: int) -> List[Dict]:
    return multiview_pretrain_pipeline(
        num_views=num_views,
        clip_len=CLIP_LEN,
        frame_interval=INTERVAL,
        size=SIZE)


def build_dataset(root: str, num_views: int = 2, **kwargs):
    cfg = dict(
        type='MultiViewVideoDataset',
        ann_file=osp.join(root, 'ann.txt'),
        data_prefix=dict(video=root),
        pipeline=pipeline(num_views))
    cfg.update(kwargs)
    return DATASETS.build(cfg)


def test_views_sit_at_independent_random_positions():
    np.random.seed(0)
    sampler = MultiViewSampleFrames(clip_len=8, frame_interval=2, num_views=2)
    starts = []
    for _ in range(400):
        results = sampler(dict(total_frames=64, filename='v.mp4'))
        inds = results['frame_inds'].reshape(2, 8)
        np.testing.assert_array_equal(np.diff(inds, axis=1), 2)
        starts.append(inds[:, 0])
    starts = np.array(starts)
    assert starts.min() == 0 and starts.max() == 64 - 15
    assert np.mean(starts[:, 0] == starts[:, 1]) < 0.1
    assert abs(np.corrcoef(starts[:, 0], starts[:, 1])[0, 1]) < 0.2
    assert results['num_clips'] == 2 and results['clip_len'] == 8


def test_one_get_batch_per_video_decodes_the_right_frames(video_root):
    steps = copy.deepcopy(pipeline(num_views=4)[:3])
    steps[0]['type'] = 'CountingDecordInit'
    transforms = [TRANSFORMS.build(step) for step in steps]
    for index in range(4):
        filename = osp.join(video_root, f'video_{index:03d}.mp4')
        CountingVideoReader.batches.clear()
        results = dict(filename=filename, start_index=0, modality='RGB')
        for transform in transforms:
            results = transform(results)
        assert len(CountingVideoReader.batches) == 1
        requested = CountingVideoReader.batches[0]
        assert requested == sorted(set(results['frame_inds'].tolist()))

        reference = decord.VideoReader(filename)
        assert len(results['imgs']) == 4 * CLIP_LEN
        for img, frame_index in zip(results['imgs'], results['frame_inds']):
            expected = reference.get_batch([int(frame_index)]).asnumpy()[0]
            np.testing.assert_array_equal(img, expected)


def test_overlapping_views_do_not_share_frame_memory(video_root):
    np.random.seed(1)
    transforms = [TRANSFORMS.build(step) for step in pipeline(4)[:3]]
    results = dict(
        filename=osp.join(video_root, 'video_000.mp4'), start_index=0)
    for transform in transforms:
        results = transform(results)
    # 4 views of span 7 in 24 frames: some frame is decoded for two views.
    inds = results['frame_inds']
    assert len(set(inds.tolist())) < len(inds)
    for i in range(len(inds)):
        for j in range(i + 1, len(inds)):
            assert not np.shares_memory(results['imgs'][i],
                                        results['imgs'][j])


def test_views_have_independent_augmentations_and_shapes(video_root):
    np.random.seed(2)
    dataset = build_dataset(video_root, num_views=4)
    crops, flips = [], []
    for index in range(len(dataset)):
        packed = dataset[index]
        assert packed['inputs'].shape == (4, 3, CLIP_LEN, SIZE, SIZE)
        assert packed['inputs'].dtype == torch.uint8
        meta = packed['data_samples'].metainfo
        assert meta['frame_inds'].shape == (4, CLIP_LEN)
        crops.append({tuple(view['crop_bbox']) for view in meta['view_meta']})
        flips.append({bool(view['flip']) for view in meta['view_meta']})
    assert all(len(video_crops) == 4 for video_crops in crops)
    assert any(len(video_flips) == 2 for video_flips in flips)


def test_colour_jitter_is_one_function_for_all_frames():
    np.random.seed(3)
    frame = np.random.randint(0, 256, (16, 20, 3), dtype=np.uint8)
    # Negative hue draws only: MMAction2's ColorJitter overflows there.
    jitter = VideoColorJitter(
        brightness=0.6, contrast=0.6, saturation=0.6, hue=(-0.15, -0.05))
    for _ in range(5):
        out = jitter(dict(imgs=[frame.copy() for _ in range(4)]))['imgs']
        assert all(np.array_equal(out[0], img) for img in out[1:])
        assert not np.array_equal(out[0], frame)
    # Contrast blends to the clip's mean grey, not each frame's own mean.
    dark, bright = np.full_like(frame, 40), np.full_like(frame, 200)
    contrast = VideoColorJitter(
        brightness=0, contrast=(0.5, 0.5), saturation=0, hue=0)
    out = contrast(dict(imgs=[dark, bright]))['imgs']
    assert out[0][0, 0, 0] == 80 and out[1][0, 0, 0] == 160


def test_grayscale_is_drawn_once_per_clip(video_root):
    np.random.seed(4)
    grayscale = TRANSFORMS.build(pipeline(2)[3]['transforms'][-1])
    assert type(grayscale).__name__ == 'VideoRandomGrayscale'
    decoded = [TRANSFORMS.build(step) for step in pipeline(2)[:3]]
    results = dict(filename=osp.join(video_root, 'video_001.mp4'))
    for transform in decoded:
        results = transform(results)
    weights = np.array([0.299, 0.587, 0.114])
    luma = [np.rint(img @ weights) for img in results['imgs']]
    gray_clips = 0
    for _ in range(60):
        out = grayscale(dict(imgs=[img.copy() for img in results['imgs']]))
        is_gray = [
            np.array_equal(img[..., 0], img[..., 1])
            and np.array_equal(img[..., 1], img[..., 2]) for img in out['imgs']
        ]
        assert len(set(is_gray)) == 1
        if is_gray[0]:
            gray_clips += 1
            for img, expected in zip(out['imgs'], luma):
                assert np.abs(img[..., 0] - expected).max() <= 1
        else:
            for img, original in zip(out['imgs'], results['imgs']):
                np.testing.assert_array_equal(img, original)
    assert 3 <= gray_clips <= 25  # p = 0.2 of 60


def test_preprocessor_returns_normalised_views(video_root):
    dataset = build_dataset(video_root, num_views=2)
    batch = pseudo_collate([dataset[0], dataset[1], dataset[2]])
    preprocessor = MODELS.build(
        dict(type='MultiViewDataPreprocessor', mean=MEAN, std=STD))
    out = preprocessor(batch, training=True)
    views = out['inputs']
    assert isinstance(views, list) and len(views) == 2
    mean = torch.tensor(MEAN).view(3, 1, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1, 1)
    for v, view in enumerate(views):
        assert view.shape == (3, 3, CLIP_LEN, SIZE, SIZE)
        assert view.dtype == torch.float32 and view.is_contiguous()
        for i in range(3):
            expected = (batch['inputs'][i][v].float() - mean) / std
            torch.testing.assert_close(view[i], expected)
    assert len(out['data_samples']) == 3

    mixed = dict(
        inputs=[batch['inputs'][0], batch['inputs'][1][:, :, :2]],
        data_samples=batch['data_samples'][:2])
    with pytest.raises(ValueError, match='one common shape'):
        preprocessor(mixed)


@pytest.mark.parametrize('case', ['corrupt', 'too_short', 'missing'])
def test_bad_videos_raise_naming_the_file(tmp_path, case):
    root = str(tmp_path)
    make_video(osp.join(root, 'good.mp4'), num_frames=24)
    bad = osp.join(root, 'bad.mp4')
    if case == 'corrupt':
        make_corrupt_video(bad)
    elif case == 'too_short':
        make_video(bad, num_frames=5)
    with open(osp.join(root, 'ann.txt'), 'w') as f:
        f.write('good.mp4 0\nbad.mp4 1\n')
    dataset = build_dataset(root)
    assert dataset[0]['inputs'].shape[0] == 2
    expected = {
        'corrupt': VideoReadError,
        'too_short': VideoTooShortError,
        'missing': VideoReadError
    }[case]
    with pytest.raises(expected, match='bad.mp4') as info:
        dataset[1]
    if case == 'too_short':
        assert 'has 5 frames' in str(info.value)
        assert '2 views of 4 frames at interval 2 need at least 7' in str(
            info.value)


def test_damaged_frames_raise_naming_the_file(tmp_path):
    """A file that opens but whose frames do not decode."""
    path = make_video(str(tmp_path / 'good.mp4'), num_frames=24)
    data = bytearray(open(path, 'rb').read())
    # Inside the frame data, clear of the container's index at the end.
    start = len(data) // 5
    data[start:start + 200] = np.random.default_rng(0).bytes(200)
    damaged = make_corrupt_video(str(tmp_path / 'damaged.mp4'), bytes(data))
    # One view over all 24 frames, so the damaged ones are always decoded.
    steps = [
        dict(type='MultiViewDecordInit'),
        dict(type='MultiViewSampleFrames', clip_len=24, num_views=1),
        dict(type='MultiViewDecordDecode')
    ]
    results = dict(filename=damaged)
    with pytest.raises(VideoReadError, match='cannot decode frames 0..23 of '
                       'video .*damaged.mp4'):
        for step in steps:
            results = TRANSFORMS.build(step)(results)


def test_resample_policy_logs_and_counts(tmp_path):
    root = str(tmp_path)
    make_video(osp.join(root, 'good.mp4'), num_frames=24)
    make_corrupt_video(osp.join(root, 'corrupt.mp4'))
    with open(osp.join(root, 'ann.txt'), 'w') as f:
        f.write('corrupt.mp4 0\ngood.mp4 1\n')
    log_file = osp.join(root, 'resample.log')
    MMLogger.get_instance('test_resample_policy', log_file=log_file)
    dataset = build_dataset(root, on_error='resample')
    packed = dataset[0]
    assert packed['data_samples'].metainfo['filename'].endswith('good.mp4')
    assert dataset.num_skipped >= 1  # the redraw may hit the corrupt one
    with open(log_file) as f:
        log = f.read()
    assert 'corrupt.mp4' in log and '1 skipped so far' in log

    test_dataset = build_dataset(root, on_error='resample', test_mode=True)
    with pytest.raises(VideoReadError, match='corrupt.mp4'):
        test_dataset[0]


def test_bad_configs_are_refused(video_root):
    with pytest.raises(ValueError, match='clip_len'):
        MultiViewSampleFrames(clip_len=0)
    with pytest.raises(ValueError, match='on_error'):
        build_dataset(video_root, on_error='skip')
    pack = TRANSFORMS.build(dict(type='PackMultiViewInputs'))
    with pytest.raises(ValueError, match='FormatShape'):
        pack(dict(imgs=[np.zeros((8, 8, 3), np.uint8)] * 8, num_clips=2,
                  clip_len=4, filename='x.mp4'))


@MODELS.register_module(force=True)
class ViewShapeProbe(BaseModel):
    """A tiny model that records the views the Runner hands it."""

    def __init__(self, data_preprocessor: Dict) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.conv = torch.nn.Conv3d(3, 2, 1)
        self.seen: List[List[tuple]] = []

    def forward(self, inputs, data_samples=None, mode='loss'):
        self.seen.append([tuple(view.shape) for view in inputs])
        loss = sum(self.conv(view).pow(2).mean() for view in inputs)
        return dict(loss=loss)


def test_runner_trains_on_the_multiview_dataloader(video_root, tmp_path):
    runner = Runner(
        model=dict(
            type='ViewShapeProbe',
            data_preprocessor=dict(
                type='MultiViewDataPreprocessor', mean=MEAN, std=STD)),
        work_dir=str(tmp_path),
        train_dataloader=dict(
            batch_size=2,
            num_workers=1,
            sampler=dict(type='DefaultSampler', shuffle=True),
            collate_fn=dict(type='pseudo_collate'),
            dataset=dict(
                type='MultiViewVideoDataset',
                ann_file=osp.join(video_root, 'ann.txt'),
                data_prefix=dict(video=video_root),
                pipeline=pipeline(num_views=2))),
        train_cfg=dict(by_epoch=False, max_iters=2),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        default_scope='mmaction',
        default_hooks=dict(checkpoint=None),
        log_level='WARNING')
    runner.train()
    assert runner.model.seen == [[(2, 3, CLIP_LEN, SIZE, SIZE)] * 2] * 2
