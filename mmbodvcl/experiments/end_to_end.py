"""Experiment 2: BOD-VCL end to end on the synthetic videos.

A small MMAction2 3D CNN, the real ``KoopmanNeck`` and the real ``VSimCLR``
are built from configs through the registry and trained by their own
``train_step``: plain V-SimCLR (``decouple=False``) with MMEngine's
``OptimWrapper``, BOD-VCL (``decouple=True``) with ``BiLevelOptimWrapper``,
whose ``bilevel_step`` runs the lower step on L_pred and the upper step on
L_A + L_M. The data go through the real ``MultiViewDataPreprocessor``.
Afterwards linear probes read each semantic from Z (the temporal mean),
Z_A and Z_M of evaluation clips whose semantics are independent, and the
Koopman eigenvalues of those clips are kept for the spectrum plot.
"""
import copy
import logging
from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence

import torch
from mmengine.logging import MessageHub, MMLogger
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope

from mmaction.registry import MODELS
from mmaction.structures import ActionDataSample
from mmbodvcl.datasets.synthetic import SEMANTICS
from mmbodvcl.functional import koopman_split
from .probe import linear_probe_accuracy, split_train_test
from .views import ViewPool

METHODS = ('plain', 'bodvcl')


@dataclass
class EndToEndSettings:
    steps: int = 40
    batch_size: int = 32
    base_channels: int = 8
    embed_dim: int = 32
    hidden_dim: int = 128
    lr: float = 0.05
    momentum: float = 0.9
    temperature: float = 0.2
    estimator: str = 'cross_view'
    xi: float = 0.1
    nu: float = 1e-4
    hypergrad: dict = field(default_factory=lambda: dict(type='aid_fd'))
    # Both methods clip the applied gradient at this norm: at initialisation
    # the AID-FD hypergradient can be ~100x the upper gradient (L_pred's
    # orthogonality term is in the thousands) and blows the weights up.
    max_grad_norm: float = 5.0
    log_every: int = 10
    seed: int = 0


def model_config(settings: EndToEndSettings, decouple: bool) -> dict:
    """V-SimCLR on ``ResNet3dSlowOnly`` (depth 18, ``base_channels`` wide;
    time kept at every stage) and ``KoopmanNeck``."""
    return dict(
        type='VSimCLR',
        backbone=dict(
            type='ResNet3dSlowOnly',
            depth=18,
            pretrained=None,
            base_channels=settings.base_channels,
            conv1_kernel=(1, 3, 3),
            inflate=(0, 0, 1, 1),
            norm_eval=False),
        neck=dict(
            type='KoopmanNeck',
            in_channels=8 * settings.base_channels,
            hid_channels=settings.hidden_dim,
            out_channels=settings.embed_dim,
            num_layers=2,
            xi=settings.xi,
            nu=settings.nu,
            estimator=settings.estimator),
        head=dict(
            type='MultiViewContrastiveHead',
            loss=dict(
                type='MultiViewInfoNCELoss',
                temperature=settings.temperature)),
        decouple=decouple,
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


@torch.no_grad()
def encode_eval(model, pool: ViewPool, xis: Sequence[float],
                chunk: int = 128) -> Dict[str, torch.Tensor]:
    """Z, and Z_A / Z_M / eigenvalues for every threshold in ``xis``, of the
    canonical evaluation clips."""
    model.eval()
    frames = []
    for start in range(0, len(pool), chunk):
        batch = dict(inputs=list(
            pool.views[start:start + chunk, :1].permute(0, 1, 5, 2, 3, 4)),
                     data_samples=None)
        views = model.data_preprocessor(batch, False)['inputs']
        frames.append(model.neck(model.backbone(views[0])))
    model.train()
    z = torch.cat(frames)  # (N, M, T)
    out = dict(unified=z.mean(-1))
    for xi in xis:
        split = koopman_split(z, xi=xi)
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
    """Probe accuracies of Z and of Z_A / Z_M at each threshold:
    ``{'Z': {...}, 'Z_A@0.1': {...}, 'Z_M@0.1': {...}, ...}``."""
    accuracies = dict(Z=_probe(encoded['unified'], labels))
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
        ``dict(method, steps, train_loss, grad_norm, log (per-step scalars
        the step returned), final (probe of Z), by_xi={xi: dict(static,
        dynamic, separation, num_static)}, eigvals=dict(real, imag))``;
        ``final_static`` / ``final_dynamic`` are the probes of Z_A / Z_M at
        ``settings.xi``.
    """
    if method not in METHODS:
        raise ValueError(f'method={method!r} is unknown; expected one of '
                         f'{METHODS}')
    init_default_scope('mmaction')
    torch.manual_seed(settings.seed)
    rng = torch.Generator().manual_seed(settings.seed)
    bilevel = method == 'bodvcl'
    model = MODELS.build(model_config(settings, decouple=bilevel))
    logger = MMLogger.get_current_instance()
    level = logger.level
    logger.setLevel(logging.WARNING)  # init_weights lists every parameter
    try:
        model.init_weights()
    finally:
        logger.setLevel(level)
    optim_wrapper = build_optim_wrapper(model,
                                        optim_config(settings, bilevel))
    record: dict = dict(method=method, steps=settings.steps, train_loss=[],
                        grad_norm=[], log={})
    for step in range(1, settings.steps + 1):
        log_vars = model.train_step(
            packed_batch(train_pool, settings.batch_size, rng), optim_wrapper)
        scalars = {
            key: float(torch.as_tensor(value).detach())
            for key, value in log_vars.items()
        }
        for key, value in scalars.items():
            if 'time' not in key:
                record['log'].setdefault(key, []).append(value)
        if not all(map(lambda v: v == v and abs(v) != float('inf'),
                       scalars.values())):
            raise FloatingPointError(
                f'{method} produced non-finite values at step {step}: '
                f'{scalars}')
        record['train_loss'].append(scalars['loss'])
        # The bi-level step reports its hypergradient's norm; MMEngine's
        # OptimWrapper logs the norm of the gradient it applied.
        record['grad_norm'].append(
            scalars['hypergrad_norm'] if bilevel else MessageHub.
            get_current_instance().get_scalar('train/grad_norm').current())
        if progress is not None and (step % settings.log_every == 0
                                     or step == settings.steps):
            shown = ' '.join(f'{key}={value:.3f}'
                             for key, value in scalars.items()
                             if 'time' not in key)
            progress(f'step {step:4d}/{settings.steps} {shown}')
    all_xis = [settings.xi] + [xi for xi in xis if xi != settings.xi]
    encoded = encode_eval(model, eval_pool, all_xis)
    accuracies = probe_embeddings(encoded, eval_pool.labels, all_xis)
    record['final'] = accuracies['Z']
    record['by_xi'] = {}
    for xi in all_xis:
        static, dynamic = accuracies[f'Z_A@{xi}'], accuracies[f'Z_M@{xi}']
        record['by_xi'][str(xi)] = dict(
            static=static,
            dynamic=dynamic,
            separation=separation_score(static, dynamic),
            num_static=float(encoded[f'num_static@{xi}'].mean()))
    at_xi = record['by_xi'][str(settings.xi)]
    record['final_static'] = at_xi['static']
    record['final_dynamic'] = at_xi['dynamic']
    eigvals = encoded[f'eigvals@{settings.xi}'].flatten()
    record['eigvals'] = dict(real=eigvals.real.tolist(),
                             imag=eigvals.imag.tolist())
    return record


def eigenvalue_summary(record: dict, xi: float) -> Dict[str, float]:
    """Share of eigenvalues in the static disc and their median distance
    from 1."""
    real = torch.tensor(record['eigvals']['real'])
    imag = torch.tensor(record['eigvals']['imag'])
    distance = torch.hypot(real - 1, imag)
    return dict(static_fraction=float((distance < xi).float().mean()),
                median_distance=float(distance.median()))

