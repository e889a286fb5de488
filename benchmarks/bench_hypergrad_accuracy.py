"""Accuracy of the finite-difference hypergradients (ITD-FD, AID-FD) and of
AID-CG on a real network, against the exact ones computed by autograd.

Model: BOD-VCL V-SimCLR on the tiny ResNet3dSlowOnly-18 (8 base channels,
ReLU, max-pool) with KoopmanNeck, as in benchmarks/bench_bilevel.py, at
random initialisation (``--seeds``) or after ``--warm-steps`` single-level
SGD steps, one batch of generated videos, fp32,
k = 1. For each lower step size gamma:

* exact unrolled hypergradient ``(I - gamma H(theta)) v``: ITD-RMAD;
* exact AID-FD target ``v - gamma H(theta*) v``: one Neumann term (double
  backward);
* ITD-FD and AID-FD at several ``alpha``: relative error against the exact
  unrolled hypergradient, ``|h - h_itd| / |h_itd - v|`` (in units of the
  second-order correction, ``v`` = first order) and ``|h - h_itd| /
  |h_itd|``;
* AID-CG (5 iterations): CG steps taken, whether it stopped at
  non-positive curvature, and the cosine to the unrolled hypergradient;
* with ``--lower-batch f ...``: the lower level on a fraction f of the
  clips (the algorithms' ``lower_batch``, every window the rule can pick):
  cosine of ITD-FD's and of the exact ITD-RMAD hypergradient to the same
  method's full-batch one (mean and min over the windows), beside the
  cosine of the first-order ``v`` to it.

Usage: ``python benchmarks/bench_hypergrad_accuracy.py [--seeds 0 1]
[--gammas 1e-4 1e-3 1e-2] [--size 32] [--lower-batch 0.5 0.25] [--tiny]``.
"""
import argparse
import os.path as osp
import sys
import tempfile
from typing import Dict, List

import torch

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
from bench_bilevel import _batch, _model_cfg  # noqa: E402

ITD_ALPHAS = (1e-2, 1e-3, 1e-4)
AID_ALPHAS = (1e-1, 1e-2, 1e-3)


def _flat(tensors: List[torch.Tensor]) -> torch.Tensor:
    return torch.cat([t.reshape(-1).double() for t in tensors])


def _hypergradient(model, state: dict, lower_data: dict, upper_data: dict,
                   gamma: float, method):
    """``method``'s result on the model's two losses (lower on
    ``lower_data``, upper on ``upper_data``), from the buffers of ``state``
    (upper forwards write BatchNorm statistics: every call starts alike)."""
    from mmbodvcl.functional.hypergrad import BilevelProblem
    from mmbodvcl.models.algorithms.stateless import (StatelessLoss,
                                                      trainable_parameters)
    model.load_state_dict(state)
    named = trainable_parameters(model)
    names = [name for name, _ in named]
    lower = StatelessLoss(model, model.loss_lower, lower_data, names, False)
    upper = StatelessLoss(model, model.loss_upper, upper_data, names, True)
    problem = BilevelProblem(lambda t: lower(t)[0], lambda t: upper(t)[0],
                             gamma)
    return method([param for _, param in named], problem)


def _hypergradients(model, data, gamma: float) -> Dict[str, torch.Tensor]:
    from mmbodvcl.functional.hypergrad import (AidCg, AidFd, AidNmn,
                                               FirstOrder, ItdFd, ItdRmad)
    processed = model.data_preprocessor(data, True)
    state = {k: v.clone() for k, v in model.state_dict().items()}

    def run(method):
        result = _hypergradient(model, state, processed, processed, gamma,
                                method)
        return _flat(result.hypergrad), result.stats

    results = dict(
        itd_rmad=run(ItdRmad())[0],
        first_order=run(FirstOrder())[0],
        nmn1=run(AidNmn(iterations=1))[0])
    for alpha in ITD_ALPHAS:
        results[f'itd_fd a={alpha:g}'] = run(ItdFd(alpha=alpha))[0]
    for alpha in AID_ALPHAS:
        results[f'aid_fd a={alpha:g}'] = run(AidFd(alpha=alpha))[0]
    cg, stats = run(AidCg(iterations=5))
    results['aid_cg'] = cg
    results['cg_stats'] = stats
    return results


def _sub_batch_cosines(model, data, gamma: float,
                       fractions: List[float]) -> Dict[str, List[float]]:
    """``{f'{method} f={f}': [cosine to the full batch per window]}`` and
    ``first_order`` ``v`` against each full-batch hypergradient."""
    from mmbodvcl.functional.hypergrad import FirstOrder, ItdFd, ItdRmad
    from mmbodvcl.functional.sub_batch import sub_batch_indices
    processed = model.data_preprocessor(data, True)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    batch = len(processed['inputs'][0])

    def run(method, index=None):
        lower_data = processed if index is None else dict(
            processed, inputs=[view[index] for view in processed['inputs']])
        return _flat(_hypergradient(model, state, lower_data, processed,
                                    gamma, method).hypergrad)

    cosine = torch.nn.functional.cosine_similarity
    results: Dict[str, List[float]] = {}
    v = run(FirstOrder())
    for name, method in (('itd_fd', ItdFd()), ('itd_rmad', ItdRmad())):
        full = run(method)
        results[f'first_order vs {name}'] = [float(cosine(v, full, dim=0))]
        for fraction in fractions:
            windows = {tuple(sub_batch_indices(batch, fraction, 0,
                                               it).tolist())
                       for it in range(100)}
            results[f'{name} f={fraction:g}'] = [
                float(cosine(run(method, torch.tensor(w)), full, dim=0))
                for w in sorted(windows)]
    model.load_state_dict(state)
    return results


def _warm_up(model, data, steps: int) -> None:
    """``steps`` single-level SGD steps on ``loss()`` (L_A + L_M + L_pred):
    away from the initialisation, whose zero-initialised residual
    BatchNorms put many ReLU / max-pool units exactly at their kinks."""
    from mmengine.optim import build_optim_wrapper
    if not steps:
        return
    model.with_lower_loss = True
    wrapper = build_optim_wrapper(
        model, dict(optimizer=dict(type='SGD', lr=0.01, momentum=0.9),
                    clip_grad=dict(max_norm=10.0)))
    for _ in range(steps):
        model.train_step(data, wrapper)
    model.with_lower_loss = False


def _report(seed: int, gamma: float, results) -> None:
    exact, v = results['itd_rmad'], results['first_order']
    correction = (exact - v).norm()
    print(f'seed {seed} gamma {gamma:g}: |v| {v.norm():.3e} '
          f'|h_itd - v| {correction:.3e} '
          f'|nmn1 - h_itd| / |h_itd - v| '
          f'{(results["nmn1"] - exact).norm() / correction:.3e}')
    for key, value in results.items():
        if key.startswith(('itd_fd', 'aid_fd')):
            error = (value - exact).norm()
            target = results['nmn1'] if key.startswith('aid') else exact
            own = (value - target).norm() / correction
            print(f'  {key:<14} err/corr {error / correction:.3e}  '
                  f'err/|h| {error / exact.norm():.3e}  '
                  f'own-target err/corr {own:.3e}')
    cosine = torch.nn.functional.cosine_similarity(
        results['aid_cg'], exact, dim=0)
    print(f'  aid_cg {results["cg_stats"]} cos(h_cg, h_itd) {cosine:.4f} '
          f'|h_cg| / |v| {results["aid_cg"].norm() / v.norm():.3e}')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--seeds', type=int, nargs='+', default=[0, 1])
    parser.add_argument('--gammas', type=float, nargs='+',
                        default=[1e-4, 1e-3, 1e-2])
    parser.add_argument('--size', type=int, default=32)
    parser.add_argument('--batch-size', type=int, default=4)
    parser.add_argument('--smooth', action='store_true',
                        help='SiLU activations and no stem max-pool')
    parser.add_argument('--warm-steps', type=int, default=0,
                        help='single-level SGD steps before measuring')
    parser.add_argument('--double', action='store_true',
                        help='float64 model (no rounding error)')
    parser.add_argument('--lower-batch', type=float, nargs='+', default=[],
                        help='fractions f of the clips for the lower level: '
                        'cosine of the hypergradient to the full-batch one')
    parser.add_argument('--tiny', action='store_true',
                        help='one seed, one gamma, 2 videos, at most one '
                        'warm-up step: a smoke run')
    args = parser.parse_args()
    if args.tiny:
        args.seeds, args.gammas, args.batch_size = args.seeds[:1], [1e-2], 2
        args.warm_steps = min(args.warm_steps, 1)
    from mmengine.registry import init_default_scope

    import mmbodvcl  # noqa: F401
    from mmaction.registry import MODELS
    from checkout import make_video_dataset
    init_default_scope('mmaction')
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as videos:
        make_video_dataset(videos, num_videos=args.batch_size,
                           num_frames=24, size=(48, 64))
        data = _batch(videos, args.batch_size, args.size, 8)
    cfg = dict(_model_cfg(False), decouple=True)
    if args.smooth:  # SiLU, no max-pooling: no kinks for the differences
        cfg['backbone'].update(act_cfg=dict(type='SiLU'), with_pool1=False)
    for seed in args.seeds:
        torch.manual_seed(seed)
        model = MODELS.build(cfg)
        model.init_weights()
        model.train()
        if args.double:
            model.double()
            data['inputs'] = [v.double() for v in data['inputs']]
        _warm_up(model, data, args.warm_steps)
        for gamma in args.gammas:
            _report(seed, gamma, _hypergradients(model, data, gamma))
            if args.lower_batch:
                for key, cosines in _sub_batch_cosines(
                        model, data, gamma, args.lower_batch).items():
                    mean = sum(cosines) / len(cosines)
                    print(f'  cos {key:<22} mean {mean:.4f} min '
                          f'{min(cosines):.4f} ({len(cosines)} windows)')


if __name__ == '__main__':
    main()
