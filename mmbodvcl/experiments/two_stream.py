"""Experiment 1: the paper's two-stream model (section 5.5, Figures 6-7).

A static stream g_A sees the first frame, a dynamic stream g_M the
differences of consecutive grey-level frames (a colour-blind stand-in for the
paper's optical flow, so that g_M cannot read the background colour); their
outputs are summed into ``Z = g_A + g_M`` (eq. 9). It is pretrained with
the unified InfoNCE on Z or with the decoupled loss
``InfoNCE(g_A) + InfoNCE(g_M)`` (eq. 14), while the gradient norm of each
stream (Definition 1) and the linear-probe accuracy of each semantic are
recorded. Plain gradient descent with momentum (no Adam), so that gradient
norms translate into how far each stream moves, as in Proposition 1.
"""
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

import torch
from torch import Tensor, nn

from mmbodvcl.datasets.synthetic import SEMANTICS
from mmbodvcl.functional.contrastive import multi_view_info_nce
from .probe import linear_probe_accuracy, split_train_test
from .views import ViewPool

LOSSES = ('unified', 'decoupled')


@dataclass
class TwoStreamSettings:
    steps: int = 150
    batch_size: int = 64
    embed_dim: int = 64
    width: int = 16
    lr: float = 0.05
    momentum: float = 0.9
    temperature: float = 0.2
    probe_every: int = 25
    seed: int = 0


def conv_stream(in_channels: int, width: int, embed_dim: int) -> nn.Sequential:
    """A small 2D CNN: a full-resolution convolution (a first stride of 2
    loses the pentagon's corners at 32 px), three stride-2 convolutions,
    BatchNorm (without it plain SGD kills a stream's ReLUs within a few dozen
    steps), global average pooling and a linear output.
    ``(B, in_channels, H, W) -> (B, embed_dim)``."""
    layers = []
    for out_channels, stride in ((width, 1), (2 * width, 2), (2 * width, 2),
                                 (2 * width, 2)):
        layers += [
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1,
                      bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU()
        ]
        in_channels = out_channels
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(2 * width, embed_dim))


class TwoStreamEncoder(nn.Module):
    """``Z = g_A(first frame) + g_M(grey frame differences)``.

    Args:
        num_frames: T of the input clips.
        width: Channels of the first convolution of each stream.
        embed_dim: D, the size of Z.
    """

    def __init__(self, num_frames: int, width: int, embed_dim: int) -> None:
        super().__init__()
        self.static_stream = conv_stream(3, width, embed_dim)
        # Differences of consecutive grey frames, stacked along channels.
        self.dynamic_stream = conv_stream(num_frames - 1, width, embed_dim)

    def forward(self, clips: Tensor) -> Dict[str, Tensor]:
        """``clips (B, 3, T, H, W)`` -> ``static``, ``dynamic`` and their sum
        ``unified``, each ``(B, D)``."""
        first = clips[:, :, 0]
        grey = clips.mean(dim=1)  # (B, T, H, W)
        differences = grey[:, 1:] - grey[:, :-1]
        static = self.static_stream(first)
        dynamic = self.dynamic_stream(differences)
        return dict(static=static, dynamic=dynamic, unified=static + dynamic)


def contrastive_loss(outputs: Dict[str, Tensor], loss: str,
                     temperature: float) -> Tensor:
    """Unified InfoNCE on Z or the decoupled sum; ``outputs`` hold
    ``(V, B, D)`` tensors."""
    if loss == 'unified':
        return multi_view_info_nce(outputs['unified'], temperature)
    if loss == 'decoupled':
        return (multi_view_info_nce(outputs['static'], temperature) +
                multi_view_info_nce(outputs['dynamic'], temperature))
    raise ValueError(f'loss={loss!r} is unknown; expected one of {LOSSES}')


def gradient_norm(module: nn.Module) -> float:
    """L2 norm of all gradients of ``module``'s parameters."""
    grads = [
        p.grad.flatten() for p in module.parameters() if p.grad is not None
    ]
    return float(torch.cat(grads).norm()) if grads else 0.0


@torch.no_grad()
def probe_streams(model: TwoStreamEncoder, eval_pool: ViewPool,
                  chunk: int = 256) -> Dict[str, List[float]]:
    """Linear-probe accuracy of each semantic from Z and from each stream."""
    model.eval()
    clips = eval_pool.canonical()
    outputs: Dict[str, List[Tensor]] = {}
    for start in range(0, len(clips), chunk):
        for key, value in model(clips[start:start + chunk]).items():
            outputs.setdefault(key, []).append(value)
    model.train()
    train_index, test_index = split_train_test(len(clips))
    return {
        key: linear_probe_accuracy(torch.cat(values), eval_pool.labels,
                                   train_index, test_index).tolist()
        for key, values in outputs.items()
    }


def _train_step(model: 'TwoStreamEncoder', optimizer, views: Tensor,
                loss: str, settings: TwoStreamSettings, step: int) -> float:
    """Forward and backward of one batch of ``(V, N, ...)`` views; the
    caller reads the streams' gradients before ``optimizer.step()``."""
    num_views, batch_size = views.shape[:2]
    outputs = model(views.flatten(0, 1))
    outputs = {
        key: value.view(num_views, batch_size, -1)
        for key, value in outputs.items()
    }
    value = contrastive_loss(outputs, loss, settings.temperature)
    if not torch.isfinite(value):
        raise FloatingPointError(
            f'{loss} loss became {value.item()} at step {step}; lower '
            f'lr={settings.lr}')
    optimizer.zero_grad()
    value.backward()
    return value.item()


def _add_probe(model: 'TwoStreamEncoder', eval_pool: ViewPool, step: int,
               record: dict, probes: Dict[str, Dict[str, List[float]]],
               progress: Optional[Callable[[str], None]],
               steps: int) -> None:
    accuracies = probe_streams(model, eval_pool)
    record['probe_steps'].append(step)
    for key, values in accuracies.items():
        for name, value in zip(SEMANTICS, values):
            probes[key][name].append(value)
    if progress is not None:
        shown = ' '.join(f'{name}={value:.2f}'
                         for name, value in zip(SEMANTICS,
                                                accuracies['unified']))
        progress(f'step {step:4d}/{steps} probe(Z): {shown}')


def run_two_stream(train_pool: ViewPool,
                   eval_pool: ViewPool,
                   loss: str,
                   settings: TwoStreamSettings,
                   progress: Optional[Callable[[str], None]] = None) -> dict:
    """Pretrain one two-stream model and record its learning dynamics.

    Args:
        train_pool: Views of the (possibly correlated) training clips.
        eval_pool: Canonical clips with independent semantics; the first
            half trains the probes, the second half tests them.
        loss: ``'unified'`` or ``'decoupled'``.
        settings: Sizes and optimisation hyper-parameters.
        progress: Called with a one-line status at every probe.

    Returns:
        ``dict(loss, steps, grad_norm_static, grad_norm_dynamic, train_loss,
        probe_steps, accuracy={semantic: [...]}, accuracy_static_stream,
        accuracy_dynamic_stream, final={semantic: acc})``; accuracies are of
        Z unless the key names a stream.
    """
    if loss not in LOSSES:
        raise ValueError(f'loss={loss!r} is unknown; expected one of {LOSSES}')
    torch.manual_seed(settings.seed)
    rng = torch.Generator().manual_seed(settings.seed)
    num_frames = train_pool.views.shape[2]
    model = TwoStreamEncoder(num_frames, settings.width, settings.embed_dim)
    optimizer = torch.optim.SGD(model.parameters(), lr=settings.lr,
                                momentum=settings.momentum)
    record: dict = dict(loss=loss, steps=settings.steps, train_loss=[],
                        grad_norm_static=[], grad_norm_dynamic=[],
                        probe_steps=[])
    probes: Dict[str, Dict[str, List[float]]] = {
        key: {name: [] for name in SEMANTICS}
        for key in ('unified', 'static', 'dynamic')
    }

    def add_probe(step: int) -> None:
        _add_probe(model, eval_pool, step, record, probes, progress,
                   settings.steps)

    add_probe(0)
    for step in range(1, settings.steps + 1):
        views, _ = train_pool.sample(settings.batch_size, 2, rng)
        record['train_loss'].append(
            _train_step(model, optimizer, views, loss, settings, step))
        record['grad_norm_static'].append(gradient_norm(model.static_stream))
        record['grad_norm_dynamic'].append(
            gradient_norm(model.dynamic_stream))
        optimizer.step()
        if step % settings.probe_every == 0 or step == settings.steps:
            add_probe(step)
    record['accuracy'] = probes['unified']
    record['accuracy_static_stream'] = probes['static']
    record['accuracy_dynamic_stream'] = probes['dynamic']
    record['final'] = {
        name: values[-1]
        for name, values in probes['unified'].items()
    }
    return record
