"""Does the Koopman split put the static part in Z_A and the dynamic part in
Z_M? Measured on features with known ground truth, no network.

Run: ``python benchmarks/bench_split_recovery.py [--tiny] [--seeds 5]``.

Per-frame features ``z_t = E_s a + E_d x_t + noise`` in ``M`` dimensions:
``a`` a per-clip static vector (``static_dim`` coordinates), ``x_t`` the
state of one shared linear system (rotations by 0.4, 0.9 and 1.6 rad a
frame and a decay by 0.5, i.e. |lambda - 1| = 0.40, 0.87, 1.43, 0.50) from a
random per-clip start, ``E_s``, ``E_d`` random unit-norm embeddings (not
orthogonal to each other), i.i.d. noise. Two views of a clip are two
consecutive windows of ``T`` frames of one trajectory.

For each split: the share of the static energy that ``T_A`` keeps,
``1 - sum ||(I - T_A) s||^2 / sum ||s||^2``, and the share of the dynamic
energy that goes to ``Z_M``, ``1 - sum ||T_A d_t||^2 / sum ||d_t||^2`` (per
frame, so an oscillation whose mean cancels still counts), both over all
clips and views; and where the eigenvalues lie (fraction of them per band
of ``|lambda - 1|``). ``steps`` gradient steps (Adam) on the features
themselves minimise the lower-level loss (``pred``: prediction +
orthogonality; ``pred+spec``: plus the spectral term, weights 1, bound
0.3); the split fitted on the moved features is then applied to the
original ground-truth parts.
"""
import argparse
import math
from typing import Dict, List, Tuple

import torch
from torch import Tensor

from mmbodvcl.functional.koopman import (apply_static_operator,
                                         koopman_prediction_loss,
                                         reduced_dmd, reduced_static_operator)
from mmbodvcl.functional.koopman_batch import (batch_prediction_loss,
                                               fit_batch_koopman,
                                               per_clip_spectral_terms)

ROTATIONS = (0.4, 0.9, 1.6)
DECAY = 0.5
BANDS = (0.0, 0.1, 0.3, 0.6, 1.0, math.inf)


def _systems(clips: int, jitter: float, gen: torch.Generator) -> Tensor:
    """``(clips, d, d)`` block-diagonal systems: the rotations and the decay,
    each clip's angles scaled by ``1 + jitter * U(-1, 1)``."""
    dyn_dim = 2 * len(ROTATIONS) + 1
    system = torch.zeros(clips, dyn_dim, dyn_dim, dtype=torch.float64)
    scale = 1 + jitter * (2 * torch.rand(clips, generator=gen,
                                         dtype=torch.float64) - 1)
    for index, angle in enumerate(ROTATIONS):
        cos, sin = torch.cos(angle * scale), torch.sin(angle * scale)
        rows = slice(2 * index, 2 * index + 2)
        system[:, rows, rows] = torch.stack(
            [torch.stack([cos, -sin], -1),
             torch.stack([sin, cos], -1)], -2)
    system[:, -1, -1] = DECAY
    return system


def make_features(clips: int, dim: int, frames: int, static_dim: int,
                  noise: float, seed: int,
                  jitter: float = 0.0) -> Dict[str, Tensor]:
    """``static``, ``dynamic``, ``noise`` and their sum ``z``, each
    ``(2, clips, dim, frames)`` (two views = two windows); ``jitter``: each
    clip rotates at its own speed (see :func:`_systems`)."""
    gen = torch.Generator().manual_seed(seed)
    dyn_dim = 2 * len(ROTATIONS) + 1
    embed = torch.randn(dim, static_dim + dyn_dim, generator=gen,
                        dtype=torch.float64)
    embed = embed / embed.norm(dim=0, keepdim=True)
    system = _systems(clips, jitter, gen)
    state = torch.randn(clips, dyn_dim, generator=gen, dtype=torch.float64)
    states = []
    for _ in range(2 * frames):
        states.append(state)
        state = torch.einsum('bij,bj->bi', system, state)
    states = torch.stack(states, dim=-1)  # (clips, dyn_dim, 2T)
    dynamic = torch.einsum('md,bdt->bmt', embed[:, static_dim:], states)
    static = (torch.randn(clips, static_dim, generator=gen,
                          dtype=torch.float64) @ embed[:, :static_dim].T)
    static = static[..., None].expand(-1, -1, 2 * frames)
    parts = dict(static=static, dynamic=dynamic,
                 noise=noise * torch.randn(dynamic.shape, generator=gen,
                                           dtype=torch.float64))
    parts = {k: torch.stack([v[..., :frames], v[..., frames:]])
             for k, v in parts.items()}
    parts['z'] = parts['static'] + parts['dynamic'] + parts['noise']
    return parts


def _energy_shares(static: Tensor, static_kept: Tensor, dynamic: Tensor,
                   dynamic_static: Tensor) -> Tuple[float, float]:
    lost = (static - static_kept).square().sum() / static.square().sum()
    leaked = dynamic_static.square().sum() / dynamic.square().sum()
    return 1 - lost.item(), 1 - leaked.item()


def batch_shares(z: Tensor, parts: Dict[str, Tensor], **options):
    """Shares of the ground-truth ``parts`` and the eigenvalues of the batch
    split fitted on ``z (V, B, M, T)``."""
    fit = fit_batch_koopman(list(z), **options)
    static, dynamic = parts['static'], parts['dynamic']
    project = fit.projector.detach()
    shares = _energy_shares(
        static, torch.einsum('mn,vbnt->vbmt', project, static), dynamic,
        torch.einsum('mn,vbnt->vbmt', project, dynamic))
    return shares, fit.eigvals


def per_clip_shares(z: Tensor, parts: Dict[str, Tensor], xi: float,
                    min_static: int):
    """The same for the per-clip split (each clip and view its own T_A)."""
    flat = z.flatten(0, 1).detach()
    dmd = reduced_dmd(flat)
    static = parts['static'].flatten(0, 1)
    dynamic = parts['dynamic'].flatten(0, 1)
    shares = _energy_shares(
        static, apply_static_operator(dmd, static, xi,
                                      min_static=min_static),
        dynamic, apply_static_operator(dmd, dynamic, xi,
                                       min_static=min_static))
    _, eigvals = reduced_static_operator(dmd, xi, min_static=min_static)
    return shares, eigvals.flatten()


def lower_loss(z: Tensor, method: dict, spectral: bool) -> Tensor:
    weights = dict(spectral_static=1.0, spectral_dynamic=1.0) if spectral \
        else dict(spectral_static=0.0, spectral_dynamic=0.0)
    if method['operator'] == 'batch':
        return batch_prediction_loss(
            list(z), nu=method['nu'], xi=method['xi'],
            static_size=method['static_size'], **weights,
            spectral_bound=method['bound']).loss
    loss = koopman_prediction_loss(list(z), nu=method['nu']).loss
    if spectral:
        pulled, pushed = per_clip_spectral_terms(
            list(z), method['xi'], method['min_static'], method['bound'])
        loss = loss + (pulled + pushed).float()
    return loss


def train_features(parts: Dict[str, Tensor], method: dict, training: str,
                   steps: int, lr: float) -> Tensor:
    """The features after ``steps`` Adam steps on the lower-level loss,
    taken directly on the features (a linear map of them would keep the
    spectrum: ``A K A^-1``)."""
    z = parts['z'].clone().requires_grad_()
    if training != 'none':
        optimiser = torch.optim.Adam([z], lr=lr)
        for _ in range(steps):
            optimiser.zero_grad()
            lower_loss(z, method, training == 'pred+spec').backward()
            optimiser.step()
    return z.detach()


def measure(method: dict, training: str, parts: Dict[str, Tensor],
            steps: int, lr: float):
    """Shares of the ground-truth parts under the split fitted on the
    (trained) features."""
    z = train_features(parts, method, training, steps, lr)
    if method['operator'] == 'batch':
        return batch_shares(z, parts, xi=method['xi'],
                            static_size=method['static_size'])
    return per_clip_shares(z, parts, method['xi'], method['min_static'])


def bands(eigvals: Tensor) -> List[float]:
    distance = (eigvals - 1).abs()
    return [((distance >= lo) & (distance < hi)).double().mean().item()
            for lo, hi in zip(BANDS[:-1], BANDS[1:])]


def methods(static_dim: int) -> Dict[str, dict]:
    common = dict(nu=1e-4, xi=0.1, bound=0.3)
    return {
        'per-clip, paper (xi 0.1)':
        dict(common, operator='per_clip', min_static=0),
        f'per-clip, min_static {static_dim}':
        dict(common, operator='per_clip', min_static=static_dim),
        'batch, xi disc 0.1':
        dict(common, operator='batch', static_size=0),
        f'batch, static_size {static_dim}':
        dict(common, operator='batch', static_size=static_dim),
        f'batch, static_size {2 * static_dim}':
        dict(common, operator='batch', static_size=2 * static_dim),
    }


def run(args) -> List[dict]:
    rows = []
    for name, method in methods(args.static_dim).items():
        for training in ('none', 'pred', 'pred+spec'):
            results = []
            for seed in range(args.seeds):
                parts = make_features(args.clips, args.dim, args.frames,
                                      args.static_dim, args.noise, seed,
                                      args.jitter)
                results.append(measure(method, training, parts, args.steps,
                                       args.lr))
            static = torch.tensor([r[0][0] for r in results])
            dynamic = torch.tensor([r[0][1] for r in results])
            hist = torch.tensor([bands(r[1]) for r in results]).mean(0)
            rows.append(dict(method=name, training=training,
                             static=static, dynamic=dynamic, bands=hist))
    return rows


def trained_spectrum(config: str, checkpoint: str) -> None:
    """Print the spectrum of a trained synthetic model's Koopman split on
    the 512 evaluation clips of ``SyntheticProbeHook`` (its batch operator,
    or the per-clip ones)."""
    from mmengine.config import Config
    from mmengine.registry import init_default_scope
    from mmengine.runner import load_checkpoint

    import mmbodvcl  # noqa: F401  (registration)
    from mmaction.registry import MODELS
    from mmbodvcl.datasets.synthetic import SyntheticVideoGenerator
    from mmbodvcl.experiments.end_to_end import encode_eval
    from mmbodvcl.experiments.views import ViewPool
    init_default_scope('mmaction')
    cfg = Config.fromfile(config)
    model = MODELS.build(cfg.model)
    load_checkpoint(model, checkpoint, map_location='cpu')
    pool = ViewPool.render(
        SyntheticVideoGenerator(512, 'iii', num_frames=8, size=32, seed=100),
        1)
    xi = model.decoupler.xi
    encoded = encode_eval(model, pool, (xi, ))
    eigvals = encoded[f'eigvals@{xi}']
    if getattr(model.decoupler, 'operator', 'per_clip') == 'batch':
        eigvals = eigvals[0]  # one shared operator
    nearest = eigvals.flatten()[(eigvals.flatten() - 1).abs().argsort()]
    print('eigenvalues nearest 1:',
          ', '.join(f'{complex(v):.3f}' for v in nearest[:8].tolist()))
    print('static modes per clip:',
          encoded[f'num_static@{xi}'].mean().item())
    print('fraction per band of abs(lambda - 1):',
          ' / '.join(f'{v:.2f}' for v in bands(eigvals.flatten())))


def _cell(values: Tensor) -> str:
    if len(values) == 1:
        return f'{values.item():.3f}'
    return f'{values.mean().item():.3f} +- {values.std().item():.3f}'


def main(argv=None) -> List[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tiny', action='store_true',
                        help='one seed, 32 clips, 10 steps (for the tests)')
    parser.add_argument('--seeds', type=int, default=5)
    parser.add_argument('--clips', type=int, default=32)
    parser.add_argument('--dim', type=int, default=32)
    parser.add_argument('--frames', type=int, default=8)
    parser.add_argument('--static-dim', type=int, default=4)
    parser.add_argument('--noise', type=float, default=0.05)
    parser.add_argument('--jitter', type=float, default=0.0,
                        help='per-clip rotation speed 1 +- jitter')
    parser.add_argument('--steps', type=int, default=50)
    parser.add_argument('--lr', type=float, default=1e-2)
    parser.add_argument('--trained', nargs=2, metavar=('CONFIG', 'CKPT'),
                        help='instead: the spectrum of a trained synthetic '
                        'model on the evaluation clips')
    args = parser.parse_args(argv)
    if args.trained:
        trained_spectrum(*args.trained)
        return []
    if args.tiny:
        args.seeds, args.steps = 1, 10
    torch.set_num_threads(1)
    rows = run(args)
    band_names = ' | '.join(f'{lo:g}-{hi:g}'
                            for lo, hi in zip(BANDS[:-1], BANDS[1:]))
    print(f'{args.clips} clips x 2 views, M = {args.dim}, T = '
          f'{args.frames}, static dim {args.static_dim}, noise '
          f'{args.noise}, jitter {args.jitter}, {args.steps} steps, seeds '
          f'0-{args.seeds - 1}')
    print(f'| split | steps on | static share in Z_A | dynamic share in Z_M'
          f' | fraction of eigenvalues with abs(lambda - 1) in {band_names}'
          ' |')
    print('|---|---|---|---|---|')
    for row in rows:
        print(f"| {row['method']} | {row['training']} | "
              f"{_cell(row['static'])} | {_cell(row['dynamic'])} | " +
              ' / '.join(f'{v:.2f}' for v in row['bands'].tolist()) + ' |')
    return rows


if __name__ == '__main__':
    main()
