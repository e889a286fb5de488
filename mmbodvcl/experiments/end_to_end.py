"""Experiment 2: BOD-VCL end to end on the synthetic videos.

A small MMAction2 3D CNN, the real ``PerFrameProjectionNeck`` and the real
``VSimCLR`` are built from configs through the registry and trained by their
own ``train_step``: plain V-SimCLR (no decoupler) with MMEngine's
``OptimWrapper``, BOD-VCL (``KoopmanDecoupler``) with ``BiLevelOptimWrapper``,
to which ``train_step`` hands the lower loss L_pred and the upper loss
L_A + L_M (``update_params_bilevel``). The data go through the real
``MultiViewDataPreprocessor``.
Afterwards linear probes read each semantic from the pooled backbone features
(what a user fine-tunes), Z (the temporal mean), Z_A and Z_M of evaluation
clips whose semantics are independent, and the Koopman eigenvalues of those
clips are kept for the spectrum plot.
"""
import copy
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmbodvcl.datasets.synthetic import SEMANTICS
from mmbodvcl.models.decouplers import KoopmanDecoupler
from .probe import linear_probe_accuracy, split_train_test
from .views import ViewPool

METHODS = ('plain', 'bodvcl')


@dataclass
class EndToEndSettings:
    """Sizes and hyper-parameters. The defaults are the control regime of
    docs/synthetic.md: plain V-SimCLR learns the trajectory without
    correlation (probe 0.99-1.00 in 3 seeds at 300 steps); the temporal stem
    kernel (``conv1_kernel`` 7 frames) is what makes the motion visible to
    the tiny backbone."""
    steps: int = 300
    batch_size: int = 32
    base_channels: int = 8
    conv1_kernel: Tuple[int, int, int] = (7, 3, 3)
    embed_dim: int = 32
    hidden_dim: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    temperature: float = 0.2
    estimator: str = 'cross_view'
    xi: float = 0.1
    nu: float = 1e-4
    # The project's default (configs/_base_/bodvcl.py); the paper's AID-FD
    # is ``dict(type='aid_fd')``.
    hypergrad: dict = field(
        default_factory=lambda: dict(type='itd_fd', lower_lr=1e-4))
    # Both methods clip the applied gradient at this norm: at initialisation
    # the AID-FD hypergradient can be ~100x the upper gradient (L_pred's
    # orthogonality term is in the thousands) and blows the weights up.
    max_grad_norm: float = 5.0
    log_every: int = 10
    seed: int = 0


def model_config(settings: EndToEndSettings, decouple: bool) -> dict:
    """V-SimCLR on ``ResNet3dSlowOnly`` (depth 18, ``base_channels`` wide;
    time kept at every stage) and ``PerFrameProjectionNeck``; BOD-VCL adds
    ``KoopmanDecoupler``."""
    decoupler = dict(type='KoopmanDecoupler', xi=settings.xi,
                     nu=settings.nu, estimator=settings.estimator)
    return dict(
        type='VSimCLR',
        backbone=dict(
            type='ResNet3dSlowOnly',
            depth=18,
            pretrained=None,
            base_channels=settings.base_channels,
            conv1_kernel=settings.conv1_kernel,
            inflate=(0, 0, 1, 1),
            norm_eval=False),
        neck=dict(
            type='PerFrameProjectionNeck',
            in_channels=8 * settings.base_channels,
            hid_channels=settings.hidden_dim,
            out_channels=settings.embed_dim,
            num_layers=2),
        head=dict(
            type='MultiViewContrastiveHead',
            loss=dict(
                type='MultiViewInfoNCELoss',
                temperature=settings.temperature)),
        decoupler=decoupler if decouple else None,
        data_preprocessor=dict(
            type='MultiViewDataPreprocessor',
            mean=[127.5, 127.5, 127.5],
            std=[64.0, 64.0, 64.0]))


def optim_config(settings: EndToEndSettings, bilevel: bool) -> dict:
    optimizer = dict(type='SGD', lr=settings.lr, momentum=settings.momentum)
    clip_grad = dict(max_norm=settings.max_grad_norm)
    if bilevel:
        return dict(
            type='BiLevelOptimWrapper',
            optimizer=optimizer,
            hypergrad=copy.deepcopy(settings.hypergrad),
            clip_grad=clip_grad)
    # MMEngine logs the norm before clipping as ``train/grad_norm``.
    return dict(type='OptimWrapper', optimizer=optimizer, clip_grad=clip_grad)


def packed_batch(pool: ViewPool, batch_size: int,
                 rng: torch.Generator) -> dict:
    """A batch as the dataloader gives it after ``PackMultiViewInputs`` and
    ``pseudo_collate``: ``inputs`` = N uint8 tensors ``(V, 3, T, H, W)``."""
    clips = torch.randperm(len(pool), generator=rng)[:batch_size]
    which = torch.argsort(
        torch.rand(len(clips), pool.views.shape[1], generator=rng),
        dim=1)[:, :2]
    views = pool.views[clips[:, None], which]  # (N, V, T, H, W, 3)
    inputs = views.permute(0, 1, 5, 2, 3, 4).contiguous()
    return dict(inputs=list(inputs),
                data_samples=[ActionDataSample() for _ in range(len(clips))])


def probe_decoupler(model) -> KoopmanDecoupler:
    """The split the probes read Z_A and Z_M through: the model's own
    (threshold, ``min_static``, ``dynamic_pool``, ...), or the paper's
    default for a model without a Koopman decoupler."""
    decoupler = getattr(model, 'decoupler', None)
    return decoupler if isinstance(decoupler,
                                   KoopmanDecoupler) else KoopmanDecoupler()


@torch.no_grad()
def encode_eval(model, pool: ViewPool, xis: Sequence[float],
                chunk: int = 128) -> Dict[str, torch.Tensor]:
    """The pooled backbone features, Z, and Z_A / Z_M / eigenvalues for every
    threshold in ``xis``, of the canonical evaluation clips."""
    model.eval()
    pooled, frames = [], []
    for start in range(0, len(pool), chunk):
        batch = dict(inputs=list(
            pool.views[start:start + chunk, :1].permute(0, 1, 5, 2, 3, 4)),
                     data_samples=None)
        views = model.data_preprocessor(batch, False)['inputs']
        features = model.backbone(views[0])  # (N, C, T, H, W)
        pooled.append(features.mean(dim=(2, 3, 4)))
        frames.append(model.neck(features))
    model.train()
    z = torch.cat(frames)  # (N, M, T)
    out = dict(backbone=torch.cat(pooled), unified=z.mean(-1))
    decoupler = probe_decoupler(model)
    for xi in xis:
        split = decoupler.split(z, xi=xi)
        out[f'static@{xi}'] = split.static
        out[f'dynamic@{xi}'] = split.dynamic
        out[f'eigvals@{xi}'] = split.eigvals
        out[f'num_static@{xi}'] = split.num_static.float()
    return out


def _probe(features: torch.Tensor, labels: torch.Tensor) -> Dict[str, float]:
    train, test = split_train_test(len(features))
    return dict(
        zip(SEMANTICS,
            linear_probe_accuracy(features, labels, train, test).tolist()))


def probe_embeddings(encoded: Dict[str, torch.Tensor], labels: torch.Tensor,
                     xis: Sequence[float]) -> Dict[str, Dict[str, float]]:
    """Probe accuracies of the pooled backbone features, of Z and of Z_A /
    Z_M at each threshold: ``{'backbone': {...}, 'Z': {...}, 'Z_A@0.1':
    {...}, 'Z_M@0.1': {...}, ...}``."""
    accuracies = dict(backbone=_probe(encoded['backbone'], labels),
                      Z=_probe(encoded['unified'], labels))
    for xi in xis:
        accuracies[f'Z_A@{xi}'] = _probe(encoded[f'static@{xi}'], labels)
        accuracies[f'Z_M@{xi}'] = _probe(encoded[f'dynamic@{xi}'], labels)
    return accuracies


def separation_score(static: Dict[str, float],
                     dynamic: Dict[str, float]) -> float:
    """Mean probe accuracy of the static semantics from Z_A and of the
    dynamic semantics from Z_M: 1.0 when each part carries its own kind."""
    return (static['simple_static'] + static['complex_static'] +
            dynamic['simple_dynamic'] + dynamic['complex_dynamic']) / 4


def run_end_to_end(train_pool: ViewPool,
                   eval_pool: ViewPool,
                   method: str,
                   settings: EndToEndSettings,
                   xis: Sequence[float] = (),
                   progress: Optional[Callable[[str], None]] = None) -> dict:
    """Pretrain V-SimCLR plainly or as BOD-VCL and probe its embeddings.

    Args:
        train_pool: Views of the training clips (at least 2 per clip).
        eval_pool: Canonical clips with independent semantics.
        method: ``'plain'`` or ``'bodvcl'``.
        settings: Sizes and hyper-parameters.
        xis: Extra split thresholds to probe the trained model with (the
            training threshold ``settings.xi`` is always probed).
        progress: Called with a one-line status every ``log_every`` steps.

    Returns:
        ``dict(method, steps, seed, seconds, train_loss, grad_norm, log
        (per-step scalars the step returned), final (probe of Z),
        final_backbone (probe of the pooled backbone features),
        by_xi={xi: dict(static,
        dynamic, separation, num_static)}, eigvals=dict(real, imag))``;
        ``final_static`` / ``final_dynamic`` are the probes of Z_A / Z_M at
        ``settings.xi``.
    """
    if method not in METHODS:
        raise ValueError(f'method={method!r} is unknown; expected one of '
                         f'{METHODS}')
    init_default_scope('mmaction')
    torch.manual_seed(settings.seed)
    bilevel = method == 'bodvcl'
    model = build_quietly(model_config(settings, decouple=bilevel))
    optim_wrapper = build_optim_wrapper(model,
                                        optim_config(settings, bilevel))
    record: dict = dict(method=method, steps=settings.steps,
                        seed=settings.seed)
    started = time.perf_counter()
    record.update(train(model, optim_wrapper, train_pool, settings,
                        progress))
    record['seconds'] = time.perf_counter() - started
    all_xis = [settings.xi] + [xi for xi in xis if xi != settings.xi]
    record.update(probe_record(model, eval_pool, all_xis))
    return record


def build_quietly(cfg: dict):
    """Build and initialise a model without init_weights' per-parameter
    log lines."""
    model = MODELS.build(cfg)
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    return model


def _finite_scalars(log_vars: dict, step: int) -> Dict[str, float]:
    scalars = {
        key: float(torch.as_tensor(value).detach())
        for key, value in log_vars.items()
    }
    if not all(math.isfinite(value) for value in scalars.values()):
        raise FloatingPointError(
            f'non-finite values at step {step}: {scalars}')
    return scalars


def train(model, optim_wrapper, pool: ViewPool, settings: EndToEndSettings,
          progress: Optional[Callable[[str], None]]) -> dict:
    """``settings.steps`` calls of ``model.train_step``; the per-step
    ``train_loss``, ``grad_norm`` and logged scalars (``log``)."""
    rng = torch.Generator().manual_seed(settings.seed)
    bilevel = hasattr(optim_wrapper, 'update_params_bilevel')
    record: dict = dict(train_loss=[], grad_norm=[], log={})
    for step in range(1, settings.steps + 1):
        scalars = _finite_scalars(
            model.train_step(packed_batch(pool, settings.batch_size, rng),
                             optim_wrapper), step)
        shown = {k: v for k, v in scalars.items() if 'time' not in k}
        for key, value in shown.items():
            record['log'].setdefault(key, []).append(value)
        record['train_loss'].append(scalars['loss'])
        # The bi-level step reports its hypergradient's norm; MMEngine's
        # OptimWrapper logs the norm of the gradient it applied.
        record['grad_norm'].append(
            scalars['hypergrad_norm'] if bilevel else MessageHub.
            get_current_instance().get_scalar('train/grad_norm').current())
        if progress is not None and (step % settings.log_every == 0
                                     or step == settings.steps):
            progress(f'step {step:4d}/{settings.steps} ' +
                     ' '.join(f'{k}={v:.3f}' for k, v in shown.items()))
    return record


def probe_record(model, eval_pool: ViewPool, xis: Sequence[float]) -> dict:
    """Probes of the trained model: ``final`` (Z), ``final_backbone``,
    ``by_xi``, ``final_static`` / ``final_dynamic`` (Z_A / Z_M at the
    first threshold) and the eigenvalues there."""
    encoded = encode_eval(model, eval_pool, xis)
    accuracies = probe_embeddings(encoded, eval_pool.labels, xis)
    by_xi = {}
    for xi in xis:
        static, dynamic = accuracies[f'Z_A@{xi}'], accuracies[f'Z_M@{xi}']
        by_xi[str(xi)] = dict(
            static=static,
            dynamic=dynamic,
            separation=separation_score(static, dynamic),
            num_static=float(encoded[f'num_static@{xi}'].mean()))
    eigvals = encoded[f'eigvals@{xis[0]}'].flatten()
    return dict(final=accuracies['Z'], final_backbone=accuracies['backbone'],
                by_xi=by_xi,
                final_static=by_xi[str(xis[0])]['static'],
                final_dynamic=by_xi[str(xis[0])]['dynamic'],
                eigvals=dict(real=eigvals.real.tolist(),
                             imag=eigvals.imag.tolist()))


def eigenvalue_summary(record: dict, xi: float) -> Dict[str, float]:
    """Share of eigenvalues in the static disc and their median distance
    from 1."""
    real = torch.tensor(record['eigvals']['real'])
    imag = torch.tensor(record['eigvals']['imag'])
    distance = torch.hypot(real - 1, imag)
    return dict(static_fraction=float((distance < xi).float().mean()),
                median_distance=float(distance.median()))
