"""kNN monitor hook, video retrieval (metric, model, dataset, configs,
tools/test.py) and the kNN maths they share, through MMEngine's Runner on
real decord-decoded videos and tiny MMAction2 backbones at 32 px.

Two data sets, each with a train (kNN memory / gallery) and a val (query)
list of 12 and 7 videos in 3 classes:

* ``solid``: a video's class is its colour (constant frames, small
  per-video offsets): trivially separable, so kNN and R@k are 1.
* ``random``: moving-square videos whose labels have nothing to do with
  their content. Its val list holds every video three times, once under
  each cyclic relabelling ``(y + s) mod 3``: whatever the features, a
  video's prediction (or its nearest gallery video's class) matches exactly
  one of its three labels, so top-1 accuracy and R@1 are exactly 1/3 - the
  chance level, asserted without any tolerance tuned to a seed.

Loaders use batch size 1 where numbers are compared across runs, so every
video is encoded by the same computation and the comparisons are exact.
"""
import copy
import glob
import json
import os
import os.path as osp
import sys
import uuid
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import decord
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import Runner

import mmbodvcl  # noqa: F401  (registration)
from mmaction.registry import DATASETS, MODELS
from mmbodvcl.engine.hooks import KNNMonitorHook
from mmbodvcl.functional import (encode_clips, knn_class_scores,
                                 pool_backbone_output, retrieval_recall,
                                 topk_accuracy)
from helpers import (free_port, gloo_rank, load_script,
                     make_solid_colour_dataset, make_video_dataset,
                     multiview_pretrain_pipeline)

ROOT = Path(__file__).resolve().parents[1]
RETRIEVAL_CONFIGS = sorted(
    (ROOT / 'configs' / 'downstream' / 'retrieval').glob('*.py'))
KNN_SNIPPETS = {
    'knn_monitor_ucf101.py': ['knn'],
    'knn_monitor_static_dynamic_ucf101.py': ['knn_static', 'knn_dynamic'],
}
TEST_TOOL = ROOT / 'tools' / 'test.py'
MEAN, STD = [123.675, 116.28, 103.53], [58.395, 57.12, 57.375]
BGR = [(40, 40, 200), (40, 200, 40), (200, 40, 40)]
NUM_CLASSES = 3
# Backbone of the tiny pretraining runs: the Slow-R50 of the configs, narrow.
BACKBONE = dict(
    type='ResNet3dSlowOnly',
    depth=18,
    base_channels=8,
    pretrained=None,
    lateral=False,
    conv1_kernel=(1, 7, 7),
    conv1_stride_t=1,
    pool1_stride_t=1,
    inflate=(0, 0, 1, 1))
NARROW = {
    'ResNet3dSlowOnly': dict(depth=18, base_channels=8),
    'ResNet2Plus1d': dict(base_channels=8)
}
CLIP = dict(clip_len=4, frame_interval=2)


def eval_pipeline(num_clips: int = 1, rawframes: bool = False) -> List[dict]:
    sampling = dict(
        type='SampleFrames', **CLIP, num_clips=num_clips, test_mode=True)
    decode = [sampling, dict(type='RawFrameDecode')] if rawframes else [
        dict(type='DecordInit'), sampling,
        dict(type='DecordDecode')
    ]
    return decode + [
        dict(type='Resize', scale=(-1, 32)),
        dict(type='CenterCrop', crop_size=32),
        dict(type='FormatShape', input_format='NCTHW'),
        dict(type='PackActionInputs')
    ]


pytestmark = pytest.mark.usefixtures('mmaction_scope')


def _relabelled(ann_file: str, out: str) -> str:
    """Every line of ``ann_file`` under each cyclic relabelling."""
    lines = Path(ann_file).read_text().split()
    pairs = list(zip(lines[::2], map(int, lines[1::2])))
    Path(out).write_text(''.join(f'{name} {(label + shift) % NUM_CLASSES}\n'
                                 for shift in range(NUM_CLASSES)
                                 for name, label in pairs))
    return out


@pytest.fixture(scope='module')
def data(tmp_path_factory) -> Dict[str, Dict[str, dict]]:
    """``{set: {part: dataset fields}}``, set solid or random, part train
    or val."""
    root = tmp_path_factory.mktemp('videos')
    solid = str(root / 'solid')
    solid_train = make_solid_colour_dataset(solid, BGR, (4, 4, 4),
                                            'train.txt', seed=0)
    solid_val = make_solid_colour_dataset(solid, BGR, (2, 2, 3), 'val.txt',
                                          seed=1)
    random_train = make_video_dataset(str(root / 'random_train'), 12,
                                      NUM_CLASSES, 16, (32, 32), seed=0)
    random_val = make_video_dataset(str(root / 'random_val'), 7,
                                    NUM_CLASSES, 16, (32, 32), seed=100)
    random_val = _relabelled(random_val,
                             random_val.replace('ann', 'shifted'))
    sets = dict(solid=dict(train=solid_train, val=solid_val),
                random=dict(train=random_train, val=random_val))
    return {
        name: {
            part: dict(ann_file=ann, data_prefix=dict(video=osp.dirname(ann)))
            for part, ann in parts.items()
        }
        for name, parts in sets.items()
    }


def loader(fields: dict) -> dict:
    """A test-style dataloader config, one video a batch."""
    return dict(
        batch_size=1,
        num_workers=0,
        sampler=dict(type='DefaultSampler', shuffle=False),
        dataset=dict(
            type='VideoDataset',
            pipeline=eval_pipeline(),
            test_mode=True,
            **fields))


def knn_splits(data) -> List[dict]:
    return [
        dict(
            name=name,
            train=loader(data[name]['train']),
            val=loader(data[name]['val'])) for name in ('solid', 'random')
    ]


def pretrain_cfg(data, work_dir: str, **hook) -> Config:
    """V-SimCLR on the narrow Slow-R50, 2 videos a batch, 1 iteration an
    epoch, with the kNN monitor."""
    cfg = Config.fromfile(str(ROOT / 'configs/_base_/default_runtime.py'))
    train = dict(data['random']['train'], indices=2)
    cfg.merge_from_dict(
        dict(
            work_dir=work_dir,
            experiment_name=f'knn_{uuid.uuid4().hex[:8]}',
            randomness=dict(seed=0),
            model=dict(
                type='VSimCLR',
                backbone=BACKBONE,
                neck=dict(
                    type='KoopmanNeck',
                    in_channels=64,
                    hid_channels=32,
                    out_channels=16,
                    num_layers=2),
                head=dict(
                    type='MultiViewContrastiveHead',
                    loss=dict(type='MultiViewInfoNCELoss', temperature=0.1)),
                data_preprocessor=dict(
                    type='MultiViewDataPreprocessor', mean=MEAN, std=STD)),
            train_dataloader=dict(
                batch_size=2,
                num_workers=0,
                sampler=dict(type='DefaultSampler', shuffle=False),
                dataset=dict(
                    type='MultiViewVideoDataset',
                    pipeline=multiview_pretrain_pipeline(2, size=32, **CLIP),
                    **train)),
            train_cfg=dict(type='EpochBasedTrainLoop', max_epochs=3),
            optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
            env_cfg=dict(dist_cfg=dict(backend='gloo')),
            log_level='WARNING',
            custom_hooks=[dict(type='KNNMonitorHook', **hook)]))
    cfg.default_hooks.checkpoint = dict(type='CheckpointHook', interval=3)
    return cfg


def encode_by_hand(backbone: torch.nn.Module,
                   fields: dict,
                   num_clips: int = 1) -> Tuple[torch.Tensor, torch.Tensor]:
    """Each video alone through the pipeline, normalisation and backbone,
    averaged over T, H, W and then over its clips."""
    dataset = DATASETS.build(
        dict(
            type='VideoDataset',
            pipeline=eval_pipeline(num_clips),
            test_mode=True,
            **fields))
    mean = torch.tensor(MEAN).view(3, 1, 1, 1)
    std = torch.tensor(STD).view(3, 1, 1, 1)
    features, labels = [], []
    backbone.eval()
    with torch.no_grad():
        for index in range(len(dataset)):
            packed = dataset[index]
            clips = (packed['inputs'].float() - mean) / std  # (V, C, T, H, W)
            features.append(backbone(clips).mean(dim=(2, 3, 4)).mean(0))
            labels.append(packed['data_samples'].gt_label.item())
    return torch.stack(features), torch.tensor(labels)


def knn_by_hand(train,
                val,
                k: int = 20,
                temperature: float = 0.07) -> Dict[str, float]:
    """Wu et al.'s weighted kNN written out per query."""
    similarity = F.normalize(val[0], dim=1) @ F.normalize(train[0], dim=1).T
    hits = {1: 0, 5: 0}
    for row, label in zip(similarity, val[1].tolist()):
        votes = [0.0] * NUM_CLASSES
        for index in row.argsort(descending=True)[:k].tolist():
            votes[train[1][index]] += float(
                torch.exp(row[index] / temperature))
        ranked = sorted(range(NUM_CLASSES), key=lambda c: -votes[c])
        hits[1] += ranked[0] == label
        hits[5] += label in [c for c in ranked[:5] if votes[c] > 0]
    return {f'top{top}': n / len(val[1]) for top, n in hits.items()}


def json_records(work_dir: str, key: str) -> List[dict]:
    [path] = glob.glob(osp.join(work_dir, '*', 'vis_data', '2*.json'))
    with open(path) as f:
        return [r for r in map(json.loads, f) if key in r]


# ------------------------------------------------------------- the maths
def test_knn_votes_and_topk_by_hand():
    bank = torch.tensor([[1., 0.], [0.8, 0.6], [0., 1.], [-1., 0.]])
    labels = torch.tensor([0, 1, 1, 2])
    query = torch.tensor([[1., 0.1]])
    scores = knn_class_scores(query, bank, labels, 4, k=3, temperature=0.5)
    sims = F.normalize(query, dim=1) @ F.normalize(bank, dim=1).T
    w = ((sims[0] - sims[0].max()) / 0.5).exp()  # neighbours 0, 1, 2
    zero = torch.tensor(0.)
    # bank row 3 (class 2) is not among the k = 3; class 3 has no sample
    torch.testing.assert_close(scores[0],
                               torch.stack([w[0], w[1] + w[2], zero, zero]))
    assert w[1] + w[2] < w[0]  # one close neighbour outvotes two farther
    assert topk_accuracy(scores, torch.tensor([1]), (1, 2)) == {1: 0., 2: 1.}
    # class 2 got no vote: never a top-k hit, even with k >= classes
    assert topk_accuracy(scores, torch.tensor([2]), (1, 4)) == {1: 0., 4: 0.}
    recall = retrieval_recall(query, torch.tensor([2]), bank, labels,
                              (1, 3, 4, 10))
    assert recall == {1: 0., 3: 0., 4: 1., 10: 1.}


def test_pooling_and_clip_averaging():
    torch.manual_seed(0)
    out = (torch.randn(2, 3, 4, 5, 5), torch.randn(2, 2, 1, 5, 5))
    torch.testing.assert_close(
        pool_backbone_output(out),
        torch.cat([out[0].mean((2, 3, 4)), out[1].mean((2, 3, 4))], 1))
    conv = torch.nn.Conv3d(3, 6, 3)
    clips = torch.randn(2, 5, 3, 4, 8, 8)  # 2 videos x 5 clips
    expected = torch.stack([
        torch.stack([conv(c[None]).mean((2, 3, 4))[0] for c in video]).mean(0)
        for video in clips
    ])
    torch.testing.assert_close(encode_clips(conv, clips), expected)
    views = list(clips.unbind(1))  # the multi-view preprocessor's layout
    torch.testing.assert_close(encode_clips(conv, views), expected)


def test_bad_inputs_are_refused():
    bank, labels = torch.randn(4, 3), torch.tensor([0, 1, 0, 1])
    with pytest.raises(ValueError, match='bank features contain NaN'):
        knn_class_scores(bank, bank.clone().fill_(float('nan')), labels, 2)
    with pytest.raises(ValueError, match=r'labels must lie in \[0, 2\)'):
        knn_class_scores(bank, bank, labels + 1, 2)
    with pytest.raises(ValueError, match='query features have 2 channels'):
        retrieval_recall(bank[:, :2], labels, bank, labels)
    with pytest.raises(KeyError, match=r"splits\[0\] lacks \['val'\]"):
        KNNMonitorHook(splits=[dict(name='knn', train={})])
    with pytest.raises(ValueError, match='distinct'):
        KNNMonitorHook(splits=[dict(name='a', train={}, val={})] * 2)


# ------------------------------------------------------------ the hook
def test_knn_monitor_hook_in_a_pretraining_run(data, tmp_path):
    work_dir = str(tmp_path / 'work')
    runner = Runner.from_cfg(
        pretrain_cfg(data, work_dir, splits=knn_splits(data), interval=2))
    runner.train()

    # Every 2 epochs and after the last: epochs 2 and 3, in the JSON log.
    records = json_records(work_dir, 'solid/top1')
    assert [r['step'] for r in records] == [2, 3]
    logged = {k: v for k, v in records[-1].items() if k != 'step'}
    assert set(logged) == {
        'solid/top1', 'solid/top5', 'random/top1', 'random/top5'
    }
    for key, value in logged.items():
        assert runner.message_hub.get_scalar(key).current() == value
    assert logged['solid/top1'] == logged['solid/top5'] == 1.0
    assert logged['random/top1'] == pytest.approx(1 / NUM_CLASSES, abs=1e-9)

    # The same numbers from an encoding and a kNN written out by hand.
    backbone = runner.model.backbone
    for name in ('solid', 'random'):
        expected = knn_by_hand(
            encode_by_hand(backbone, data[name]['train']),
            encode_by_hand(backbone, data[name]['val']))
        assert {k: logged[f'{name}/{k}'] for k in expected} == \
            pytest.approx(expected, abs=1e-9)
    assert runner.model.training  # handed back in training mode


def test_knn_monitor_counts_iterations(data, tmp_path):
    work_dir = str(tmp_path / 'work')
    cfg = pretrain_cfg(
        data,
        work_dir,
        splits=knn_splits(data)[:1],
        interval=2,
        by_epoch=False)
    cfg.train_cfg = dict(type='IterBasedTrainLoop', max_iters=3)
    # (a restarted dataloader costs the iteration loop a 2 s sleep)
    cfg.train_dataloader.sampler = dict(type='InfiniteSampler', shuffle=False)
    Runner.from_cfg(cfg).train()
    assert [r['step'] for r in json_records(work_dir, 'solid/top1')] == [2, 3]

    cfg.custom_hooks[0].by_epoch = True  # would silently never run
    cfg.experiment_name += '_by_epoch'
    with pytest.raises(ValueError, match='set by_epoch=False'):
        Runner.from_cfg(cfg).train()


def _rawframes(fields: dict, out: str) -> dict:
    """The videos of a ``VideoDataset`` list as PNG rawframes and a
    ``RawframeDataset`` list."""
    lines = []
    for line in Path(fields['ann_file']).read_text().split('\n')[:-1]:
        name, label = line.split()
        frames = decord.VideoReader(
            osp.join(fields['data_prefix']['video'], name))
        frame_dir = osp.join(out, osp.splitext(name)[0])
        os.makedirs(frame_dir)
        for t in range(len(frames)):
            cv2.imwrite(
                osp.join(frame_dir, f'img_{t + 1:05d}.png'),
                frames[t].asnumpy()[..., ::-1])
        lines.append(f'{osp.splitext(name)[0]} {len(frames)} {label}\n')
    ann_file = osp.join(out, osp.basename(fields['ann_file']))
    Path(ann_file).write_text(''.join(lines))
    return dict(ann_file=ann_file, data_prefix=dict(img=out))


def test_knn_snippets_switch_the_monitor_on(data, tmp_path):
    """The shipped ``_base_`` snippets, data paths and sizes replaced, as
    the only change to a pretraining config (both at once here)."""
    hooks = []
    for snippet, names in KNN_SNIPPETS.items():
        [hook] = copy.deepcopy(
            Config.fromfile(str(ROOT / 'configs/_base_' /
                                snippet)).custom_hooks)
        assert hook['type'] == 'KNNMonitorHook'
        assert [split['name'] for split in hook['splits']] == names
        hooks.append(hook)
    for split in hooks[0]['splits'] + hooks[1]['splits']:
        for part in ('train', 'val'):
            dataset = split[part]['dataset']
            rawframes = dataset['type'] == 'RawframeDataset'
            fields = data['solid'][part]
            if rawframes:
                fields = _rawframes(fields, str(tmp_path / 'frames' / part))
            dataset.update(fields, pipeline=eval_pipeline(1, rawframes))
            split[part].update(num_workers=0, batch_size=4)
    work_dir = str(tmp_path / 'work')
    cfg = pretrain_cfg(data, work_dir, splits=[])
    cfg.custom_hooks = hooks
    cfg.train_cfg.max_epochs = 1
    Runner.from_cfg(cfg).train()
    for names in KNN_SNIPPETS.values():
        [record] = json_records(work_dir, f'{names[0]}/top1')
        assert record['step'] == 1
        for name in names:
            assert record[f'{name}/top1'] == record[f'{name}/top5'] == 1.0


@pytest.mark.parametrize('snippet', sorted(KNN_SNIPPETS))
def test_one_base_line_switches_a_paper_config_on(snippet, tmp_path):
    paper = ROOT / 'configs/bodvcl/vsimclr_slowr50_k400.py'
    leaf = tmp_path / 'with_knn.py'
    leaf.write_text(f"_base_ = ['{paper}', "
                    f"'{ROOT / 'configs/_base_' / snippet}']\n")
    plain, with_knn = Config.fromfile(str(paper)), Config.fromfile(str(leaf))
    assert 'custom_hooks' not in plain  # off by default
    [hook] = with_knn.custom_hooks
    assert hook['type'] == 'KNNMonitorHook'
    assert [s['name'] for s in hook['splits']] == KNN_SNIPPETS[snippet]
    for key in ('model', 'train_dataloader', 'optim_wrapper', 'train_cfg'):
        assert with_knn[key] == plain[key]


def _knn_worker(rank: int, port: int, cfg_dict: dict, out: str) -> None:
    init_default_scope('mmaction')
    cfg = Config(cfg_dict)
    cfg.launcher = 'pytorch'
    with gloo_rank(rank, 2, port):
        runner = Runner.from_cfg(cfg)
        [hook] = [h for h in runner.hooks if isinstance(h, KNNMonitorHook)]
        torch.save(hook.evaluate(runner, step=1), f'{out}.{rank}')


def test_two_gloo_ranks_give_the_numbers_of_one_process(data, tmp_path):
    """Each rank encodes half of every set (7 val videos: one rank gets a
    padded duplicate), rank 0 gathers; both ranks get the numbers."""
    plain = dict(data['random']['val'], indices=7)  # unshifted labels
    splits = knn_splits(data) + [
        dict(
            name='plain',
            train=loader(data['random']['train']),
            val=loader(plain))
    ]
    cfg = pretrain_cfg(data, str(tmp_path / 'one'), splits=splits, k=5)
    runner = Runner.from_cfg(cfg)
    [hook] = [h for h in runner.hooks if isinstance(h, KNNMonitorHook)]
    expected = hook.evaluate(runner, step=1)

    cfg = pretrain_cfg(data, str(tmp_path / 'two'), splits=splits, k=5)
    out = str(tmp_path / 'metrics.pth')
    mp.start_processes(
        _knn_worker,
        args=(free_port(), cfg.to_dict(), out),
        nprocs=2,
        start_method='spawn')
    for rank in range(2):
        assert torch.load(f'{out}.{rank}') == expected


# --------------------------------------------------------- retrieval
def narrow(cfg: Config) -> None:
    cfg.model.backbone.update(NARROW[cfg.model.backbone.type])


def retrieval_cfg(config: Path, data, query: str, work_dir: str,
                  load_from: str) -> Config:
    """A shipped retrieval config on the generated data: narrow backbone,
    32 px, 4-frame clips, still 10 clips a video."""
    cfg = Config.fromfile(str(config))
    narrow(cfg)
    dataset = cfg.test_dataloader.dataset
    [num_clips] = [
        step['num_clips'] for step in dataset.pipeline
        if step['type'] == 'SampleFrames'
    ]
    assert num_clips == 10
    cfg.test_dataloader.update(num_workers=0, persistent_workers=False)
    dataset.gallery.update(data[query]['train'])
    dataset.query.update(data[query]['val'])
    dataset.pipeline = eval_pipeline(num_clips)
    cfg.update(
        work_dir=work_dir,
        load_from=load_from,
        log_level='WARNING',
        experiment_name=f'retrieval_{uuid.uuid4().hex[:8]}')
    return cfg


def save_backbone(backbone: torch.nn.Module, path: str) -> dict:
    """Perturbed weights under ``backbone.*`` (so loading shows)."""
    generator = torch.Generator().manual_seed(0)
    state = {
        k:
        v * (1 + 0.05 * torch.randn(v.shape, generator=generator))
        if v.is_floating_point() else v
        for k, v in backbone.state_dict().items()
    }
    torch.save(
        dict(state_dict={
            f'backbone.{k}': v
            for k, v in state.items()
        }), path)
    return state


@pytest.mark.parametrize('config', RETRIEVAL_CONFIGS, ids=lambda p: p.stem)
def test_retrieval_config(config, data, tmp_path):
    probe = Config.fromfile(str(config))
    narrow(probe)
    ckpt = str(tmp_path / 'backbone.pth')
    weights = save_backbone(MODELS.build(probe.model.backbone), ckpt)

    runner = Runner.from_cfg(
        retrieval_cfg(config, data, 'solid', str(tmp_path / 'solid'), ckpt))
    metrics = runner.test()
    assert metrics == {f'retrieval/R@{k}': 1.0 for k in (1, 5, 10, 20)}
    for key, value in runner.model.backbone.state_dict().items():
        assert torch.equal(value, weights[key]), key


def test_retrieval_refuses_a_checkpoint_without_the_backbone(data, tmp_path):
    ckpt = str(tmp_path / 'neck_only.pth')
    torch.save(dict(state_dict={'neck.fc.weight': torch.zeros(2, 2)}), ckpt)
    runner = Runner.from_cfg(
        retrieval_cfg(RETRIEVAL_CONFIGS[0], data, 'solid',
                      str(tmp_path / 'work'), ckpt))
    with pytest.raises(KeyError, match=r"missing .*prefixes are \['neck'\]"):
        runner.test()


def test_tools_test_runs_retrieval_on_a_pretraining_checkpoint(
        data, tmp_path, monkeypatch):
    """tools/test.py CONFIG CHECKPOINT, the checkpoint saved by a V-SimCLR
    run (keys backbone.*, neck.*, heads.*)."""
    config = ROOT / 'configs/downstream/retrieval/' \
        'slowonly_r50_8x8x10_224_retrieval_ucf101.py'
    work_dir = str(tmp_path / 'test')
    cfg = retrieval_cfg(config, data, 'random', work_dir, 'unused')
    pretrain = pretrain_cfg(data, str(tmp_path / 'pretrain'), splits=[])
    pretrain.model.backbone = copy.deepcopy(cfg.model.backbone)
    pretrain.custom_hooks = []
    pretrain.train_cfg.max_epochs = 1
    pretrain.default_hooks.checkpoint.interval = 1
    Runner.from_cfg(pretrain).train()
    ckpt = str(tmp_path / 'pretrain' / 'epoch_1.pth')
    state = torch.load(ckpt, map_location='cpu')['state_dict']
    assert {key.split('.')[0] for key in state} >= {'backbone', 'neck'}

    small = str(tmp_path / 'retrieval.py')
    cfg.dump(small)
    tool = load_script(str(TEST_TOOL))
    monkeypatch.setattr(sys, 'argv', [str(TEST_TOOL), small, ckpt])
    tool.main()

    [path] = glob.glob(osp.join(work_dir, '*', '2*.json'))
    with open(path) as f:
        metrics = json.load(f)
    # The numbers of the checkpoint's encoder, encoded and ranked by hand.
    backbone = MODELS.build(cfg.model.backbone)
    backbone.load_state_dict({
        k[len('backbone.'):]: v
        for k, v in state.items() if k.startswith('backbone.')
    })
    recall = retrieval_recall(
        *encode_by_hand(backbone, data['random']['val'], num_clips=10),
        *encode_by_hand(backbone, data['random']['train'], num_clips=10))
    assert {f'retrieval/R@{k}': v for k, v in recall.items()} == \
        pytest.approx({k: metrics[k] for k in metrics
                       if k.startswith('retrieval/')}, abs=1e-9)
    assert metrics['retrieval/R@1'] == pytest.approx(
        1 / NUM_CLASSES, abs=1e-9)  # random labels: chance, exactly
