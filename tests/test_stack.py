"""The pinned OpenMMLab stack works after ``import mmbodvcl``.

Stock MMAction2 models build from MMAction2's packaged configs
(``mmaction::...``) and run on CPU; a short Runner training saves a
checkpoint that ``tools/train.py --resume`` continues and ``tools/test.py``
evaluates; ``--amp`` handles our optim wrapper.
"""
import os.path as osp
import subprocess
import sys
from types import ModuleType
from typing import List

import pytest
import torch

import mmbodvcl  # noqa: F401  (compatibility fixes first)
from helpers import load_script, make_video_dataset, mmaction_config
from mmengine.config import Config, ConfigDict
from mmengine.hooks import Hook
from mmengine.registry import DefaultScope
from mmengine.runner import Runner
from mmengine.structures import InstanceData

from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample

REPO_ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
TINY_CONFIG = osp.join(REPO_ROOT, 'tests', 'configs', 'tiny_recognizer3d.py')
SLOW_R50_CONFIG = ('recognition/slowonly/'
                   'slowonly_r50_8xb16-4x16x1-256e_kinetics400-rgb.py')
AVA_CONFIG = ('detection/slowonly/slowonly_kinetics400-pretrained-'
              'r50_8xb16-4x16x1-20e_ava21-rgb.py')


def build_model(config: str) -> torch.nn.Module:
    """Build ``config``'s model in MMAction2's scope, in eval mode."""
    cfg = mmaction_config(config)
    with DefaultScope.overwrite_default_scope('mmaction'):
        model = MODELS.build(cfg.model)
    return model.eval()


def tiny_clip() -> torch.Tensor:
    """One uint8 clip, ``(num_clips=1, 3, T=4, 32, 32)``."""
    generator = torch.Generator().manual_seed(0)
    return torch.randint(
        0, 256, (1, 3, 4, 32, 32), generator=generator, dtype=torch.uint8)


# -------------------------------------------------- stock models from configs
def test_slow_r50_recognizer3d_forward_on_cpu() -> None:
    model = build_model(SLOW_R50_CONFIG)
    assert type(model).__name__ == 'Recognizer3D'
    assert type(model.backbone).__name__ == 'ResNet3dSlowOnly'
    assert model.backbone.depth == 50
    data = dict(
        inputs=[tiny_clip()],
        data_samples=[ActionDataSample().set_gt_label(3)])
    with torch.no_grad():
        data = model.data_preprocessor(data, training=False)
        assert data['inputs'].shape == (1, 1, 3, 4, 32, 32)
        features, _ = model.extract_feat(data['inputs'])
        predictions = model(**data, mode='predict')
    assert features.shape[:2] == (1, 2048)
    scores = predictions[0].pred_score
    assert scores.shape == (400, )
    assert torch.isfinite(scores).all()
    # average_clips='prob': a distribution over Kinetics-400.
    torch.testing.assert_close(scores.sum(), torch.tensor(1.0))


def test_ava_fastrcnn_forward_with_mmcv_roi_align_on_cpu() -> None:
    from mmcv.ops import RoIAlign
    model = build_model(AVA_CONFIG)
    assert type(model).__name__ == 'FastRCNN'
    roi_layer = model.roi_head.bbox_roi_extractor.roi_layer
    assert isinstance(roi_layer, RoIAlign)  # compiled op, not mmcv-lite

    proposals = torch.tensor([[2., 2., 20., 20.], [8., 4., 30., 28.]])
    labels = torch.zeros(2, 81)
    labels[0, 5] = labels[1, 12] = 1.0
    sample = ActionDataSample()
    sample.set_metainfo(dict(img_shape=(32, 32)))
    sample.proposals = InstanceData(bboxes=proposals)
    sample.gt_instances = InstanceData(bboxes=proposals, labels=labels)
    data = dict(inputs=[tiny_clip()[0]], data_samples=[sample])

    with torch.no_grad():
        batch = model.data_preprocessor(data, training=False)
        assert batch['inputs'].shape == (1, 3, 4, 32, 32)
        predictions = model(**batch, mode='predict')
    instances = predictions[0].pred_instances
    assert instances.bboxes.shape == (2, 4)
    assert instances.scores.shape == (2, 81)
    assert torch.isfinite(instances.scores).all()
    # Boxes come back normalised to the 32x32 frame.
    torch.testing.assert_close(instances.bboxes, proposals / 32)

    model.train()
    batch = model.data_preprocessor(data, training=True)
    losses = model(**batch, mode='loss')
    total = sum(value for key, value in losses.items() if 'loss' in key)
    total.backward()
    assert torch.isfinite(total)
    conv1_grad = model.backbone.conv1.conv.weight.grad
    assert conv1_grad is not None and conv1_grad.abs().sum() > 0


# ------------------------------------------------ training, resume, testing
class WeightSnapshot(Hook):
    """Keeps the weights the Runner starts training from."""

    def before_train(self, runner: Runner) -> None:
        self.state = {
            name: value.detach().clone()
            for name, value in runner.model.state_dict().items()
        }


def data_options(data_root: str) -> List[str]:
    ann_file = osp.join(data_root, 'ann.txt')
    return [
        f'{loader}.dataset.{key}={value}'
        for loader in ('train_dataloader', 'test_dataloader')
        for key, value in (('ann_file', ann_file),
                           ('data_prefix.video', data_root))
    ]


def run_tool(args: List[str]) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, *args],
                            cwd=REPO_ROOT,
                            capture_output=True,
                            text=True,
                            timeout=600)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return result


def test_runner_trains_then_train_py_resumes_and_test_py_evaluates(
        tmp_path) -> None:
    data_root = str(tmp_path / 'videos')
    make_video_dataset(data_root, num_videos=4, size=(32, 32))

    # 1 epoch by MMEngine's own Runner.
    first_dir = str(tmp_path / 'first')
    cfg = Config.fromfile(TINY_CONFIG)
    cfg.work_dir = first_dir
    cfg.merge_from_dict(
        dict(option.split('=', 1) for option in data_options(data_root)))
    runner = Runner.from_cfg(cfg)
    snapshot = WeightSnapshot()
    runner.register_hook(snapshot)
    runner.train()
    first = osp.join(first_dir, 'epoch_1.pth')
    first_state = torch.load(first, map_location='cpu')
    assert first_state['meta']['epoch'] == 1
    assert first_state['meta']['iter'] == 2

    # tools/train.py --resume continues it to epoch 2.
    resumed_dir = str(tmp_path / 'resumed')
    result = run_tool([
        'tools/train.py', TINY_CONFIG, '--work-dir', resumed_dir, '--resume',
        first, '--cfg-options', *data_options(data_root),
        'train_cfg.max_epochs=2'
    ])
    assert 'resumed epoch: 1, iter: 2' in result.stdout
    assert not osp.exists(osp.join(resumed_dir, 'epoch_1.pth'))
    second_state = torch.load(
        osp.join(resumed_dir, 'epoch_2.pth'), map_location='cpu')
    assert second_state['meta']['epoch'] == 2
    assert second_state['meta']['iter'] == 4
    name = 'backbone.conv1.conv.weight'
    initial = snapshot.state[name]
    after_first = first_state['state_dict'][name]
    after_second = second_state['state_dict'][name]
    assert not torch.allclose(after_first, initial)
    assert not torch.allclose(after_second, after_first)

    # tools/test.py evaluates the resumed checkpoint and dumps predictions.
    dump = str(tmp_path / 'predictions.pkl')
    result = run_tool([
        'tools/test.py', TINY_CONFIG,
        osp.join(resumed_dir, 'epoch_2.pth'), '--work-dir',
        str(tmp_path / 'test'), '--dump', dump, '--cfg-options',
        *data_options(data_root)
    ])
    assert 'acc/top1' in result.stdout
    assert osp.isfile(dump)


# ------------------------------------------------------------------ --amp
@pytest.fixture(scope='module')
def train_tool() -> ModuleType:
    return load_script(osp.join(REPO_ROOT, 'tools', 'train.py'))


@pytest.mark.parametrize('wrapper_type', ['OptimWrapper', 'AmpOptimWrapper'])
def test_amp_makes_stock_wrappers_amp(train_tool: ModuleType,
                                      wrapper_type: str) -> None:
    optim_wrapper = ConfigDict(type=wrapper_type, optimizer=dict(type='SGD'))
    train_tool.enable_amp(optim_wrapper)
    assert optim_wrapper.type == 'AmpOptimWrapper'
    assert optim_wrapper.loss_scale == 'dynamic'


def test_amp_sets_use_amp_on_bilevel_wrapper(train_tool: ModuleType) -> None:
    optim_wrapper = ConfigDict(
        type='BiLevelOptimWrapper', optimizer=dict(type='SGD'))
    train_tool.enable_amp(optim_wrapper)
    assert optim_wrapper.type == 'BiLevelOptimWrapper'
    assert optim_wrapper.use_amp is True


def test_amp_refuses_unknown_wrapper(train_tool: ModuleType) -> None:
    optim_wrapper = ConfigDict(type='MyWrapper', optimizer=dict(type='SGD'))
    with pytest.raises(ValueError, match="optim_wrapper.type='MyWrapper'"):
        train_tool.enable_amp(optim_wrapper)
    assert optim_wrapper.type == 'MyWrapper'


def test_train_py_amp_flag_reaches_config(train_tool: ModuleType,
                                          monkeypatch, tmp_path) -> None:
    monkeypatch.setenv('LOCAL_RANK', '0')  # parse_args sets it otherwise
    monkeypatch.setattr(sys, 'argv', [
        'train.py', TINY_CONFIG, '--amp', '--work-dir',
        str(tmp_path), '--resume'
    ])
    args = train_tool.parse_args()
    cfg = train_tool.merge_args(Config.fromfile(TINY_CONFIG), args)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    assert cfg.resume is True and cfg.load_from is None
    assert cfg.work_dir == str(tmp_path)
