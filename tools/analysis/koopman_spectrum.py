"""Koopman spectrum of pretrained per-frame features (paper Fig. 4).

For each video, one centre clip goes through the backbone and the
per-frame encoder of a pretraining config (``z``: ``(1, M, T)``); the model's
Koopman decoupler's ``split`` (a default one for a plain V-CL model) gives
the eigenvalues of the fitted Koopman operator and which
are static (``|lambda - 1| < xi``). The tool writes

* ``eigenvalues.png`` (Fig. 4 a): the eigenvalues of every video in the
  complex plane, static ones in another colour, with the unit circle and the
  circle ``|lambda - 1| = xi``;
* ``mode_amplitudes_<video>.png`` (Fig. 4 b) for the first
  ``--num-examples`` videos: ``|b_m(t)|`` over time, where
  ``b(t) = W^-1 U^T z_t`` are the coordinates of frame t on the DMD modes
  (``b(t+1) = Lambda b(t)`` for an exact fit, so a mode with lambda ~ 1 stays
  constant), normalised by each mode's largest amplitude;
* ``eigenvalues.csv`` (video, index, real, imag, distance to 1, static) and
  ``mode_amplitudes.csv`` (video, mode, eigenvalue, t, amplitude).

Example::

    python tools/analysis/koopman_spectrum.py \\
        configs/bodvcl/vsimclr_slowr50_k400.py \\
        work_dirs/vsimclr/epoch_200.pth \\
        data/kinetics400/kinetics400_val_list_videos.txt \\
        --data-root data/kinetics400/videos_val --out-dir work_dirs/fig4
"""
import argparse
import csv
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from mmbodvcl.apis.analysis import (analysis_parser, load_inputs, plt,
                                    read_video_list, save_figure, short_name)
from mmbodvcl.functional import reduced_dmd
from mmbodvcl.models.decouplers import KoopmanDecoupler

VIEW = 1.6  # half-width of the complex-plane view of eigenvalues.png


def mode_amplitudes(z: Tensor, **dmd_cfg) -> Tuple[Tensor, Tensor]:
    """Coordinates of every frame on the exact-DMD modes of its clip.

    Args:
        z: ``(1, M, T)`` per-frame features of one clip.
        **dmd_cfg: options of :func:`mmbodvcl.functional.reduced_dmd`.

    Returns:
        ``(r, T)`` complex ``b(t) = W^-1 U^T z_t`` and the ``(r,)``
        eigenvalues of the modes.
    """
    dmd = reduced_dmd(z, **dmd_cfg)
    with torch.autocast(device_type=z.device.type, enabled=False):
        # eig of the r x r A~ (fp64); W are the reduced mode coordinates
        eigvals, eigvecs = torch.linalg.eig(dmd.reduced)
        projected = dmd.right_basis.mT @ (dmd.prev.mT @ z.double())  # U^T z
        coords = torch.linalg.solve(eigvecs, projected.to(eigvecs.dtype))
    return coords[0], eigvals[0]


def plot_eigenvalues(eigvals: np.ndarray, static: np.ndarray, xi: float,
                     num_videos: int, path: str) -> None:
    fig, ax = plt.subplots(figsize=(4.4, 4.2))
    angle = np.linspace(0, 2 * np.pi, 361)
    ax.plot(np.cos(angle), np.sin(angle), color='0.6', lw=0.8,
            label='unit circle')
    ax.plot(1 + xi * np.cos(angle), xi * np.sin(angle), color='tab:red',
            lw=1.0, ls='--', label=f'|lambda - 1| = {xi:g}')
    ax.scatter(eigvals[~static].real, eigvals[~static].imag, s=10,
               alpha=0.5, color='tab:blue', label='dynamic')
    ax.scatter(eigvals[static].real, eigvals[static].imag, s=10, alpha=0.7,
               color='tab:orange', label='static')
    ax.axhline(0, color='0.85', lw=0.6)
    ax.axvline(0, color='0.85', lw=0.6)
    # the unit disc is where the split happens; far outliers are counted
    ax.set_xlim(-VIEW, VIEW)
    ax.set_ylim(-VIEW, VIEW)
    ax.set_aspect('equal')
    ax.set_xlabel('Re(lambda)')
    ax.set_ylabel('Im(lambda)')
    outside = int((np.maximum(np.abs(eigvals.real), np.abs(eigvals.imag))
                   > VIEW).sum())
    title = f'Koopman eigenvalues of {num_videos} videos'
    if outside:
        title += f' ({outside} outside the view)'
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc='lower left')
    save_figure(fig, path)


def plot_amplitudes(amplitudes: np.ndarray, eigvals: np.ndarray,
                    static: np.ndarray, title: str, path: str) -> None:
    """Args: amplitudes ``(r, T)`` magnitudes; eigvals, static ``(r,)``."""
    fig, ax = plt.subplots(figsize=(5.2, 3.4))
    scale = amplitudes.max(axis=1, keepdims=True)
    normalised = amplitudes / np.where(scale > 0, scale, 1)
    for row, value, is_static in zip(normalised, eigvals, static):
        ax.plot(np.arange(len(row)), row, marker='o', ms=3,
                ls='-' if is_static else '--',
                label=f'lambda = {value.real:.2f}{value.imag:+.2f}j'
                f' ({"static" if is_static else "dynamic"})')
    ax.set_xlabel('frame t')
    ax.set_ylabel('|b_m(t)| / max_t |b_m(t)|')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=6, loc='best')
    save_figure(fig, path)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = analysis_parser(__doc__)
    parser.add_argument('video_list',
                        help='VideoDataset annotation file or list of paths')
    parser.add_argument('--data-root', default='',
                        help='folder the paths of the list are relative to')
    parser.add_argument('--num-examples', type=int, default=2,
                        help='videos whose mode amplitudes are drawn')
    parser.add_argument('--num-modes', type=int, default=6,
                        help='modes drawn per video, closest to 1 first')
    return parser.parse_args(argv)


def write_eigenvalues(model, decoupler: KoopmanDecoupler,
                      videos: List[str], clip, path: str,
                      num_examples: int) -> Tuple[list, list, list]:
    """Eigenvalues of every video into ``path`` (CSV); returns them, their
    static masks and the per-frame embeddings of the first
    ``num_examples`` videos."""
    all_eigvals, all_static, examples = [], [], []
    with open(path, 'w', newline='') as f, torch.no_grad():
        writer = csv.writer(f)
        writer.writerow(
            ['video', 'index', 'real', 'imag', 'distance_to_1', 'static'])
        for video in videos:
            z = model.encode(clip(video))  # (1, M, T)
            split = decoupler.split(z)
            eigvals = split.eigvals[0].cpu().numpy()
            static = split.static_mask[0].cpu().numpy()
            for index, (value, is_static) in enumerate(zip(eigvals, static)):
                writer.writerow([
                    video, index, f'{value.real:.6f}', f'{value.imag:.6f}',
                    f'{abs(value - 1):.6f}', int(is_static)
                ])
            all_eigvals.append(eigvals)
            all_static.append(static)
            if len(examples) < num_examples:
                examples.append((video, z.cpu()))
    return all_eigvals, all_static, examples


def write_mode_amplitudes(examples: list, decoupler: KoopmanDecoupler,
                          num_modes: int, out_dir: str) -> List[str]:
    """``mode_amplitudes.csv`` and one figure per example video; returns
    the paths written."""
    written = []
    amp_csv = osp.join(out_dir, 'mode_amplitudes.csv')
    with open(amp_csv, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['video', 'mode', 'eigenvalue', 't', 'amplitude'])
        for index, (path, z) in enumerate(examples):
            coords, eigvals = mode_amplitudes(z, **decoupler.spectral_cfg)
            order = (eigvals - 1).abs().argsort()[:num_modes]
            amplitudes = coords[order].abs().numpy()
            eigvals = eigvals[order].numpy()
            for mode, (value, row) in enumerate(zip(eigvals, amplitudes)):
                for t, amplitude in enumerate(row):
                    writer.writerow([path, mode, f'{value:.6f}', t,
                                     f'{amplitude:.6f}'])
            png = osp.join(out_dir,
                           f'mode_amplitudes_{index:03d}_{short_name(path)}'
                           '.png')
            plot_amplitudes(amplitudes, eigvals,
                            np.abs(eigvals - 1) < decoupler.xi,
                            f'{osp.basename(path)}: mode amplitudes', png)
            written.append(png)
    return written + [amp_csv]


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Run the tool; returns the paths it wrote."""
    args = parse_args(argv)
    videos = read_video_list(args.video_list, args.data_root)
    _, model, clip = load_inputs(args)
    if not hasattr(model, 'encode'):
        raise TypeError(
            f'model {type(model).__name__} of {args.config!r} has no '
            'per-frame encoder; use a pretraining config of configs/bodvcl '
            'or configs/baselines')
    # A plain V-CL model is split at the default threshold, for comparison.
    decoupler = model.decoupler if isinstance(
        model.decoupler, KoopmanDecoupler) else KoopmanDecoupler()
    os.makedirs(args.out_dir, exist_ok=True)

    eig_csv = osp.join(args.out_dir, 'eigenvalues.csv')
    all_eigvals, all_static, examples = write_eigenvalues(
        model, decoupler, videos, clip, eig_csv, args.num_examples)
    eig_png = osp.join(args.out_dir, 'eigenvalues.png')
    plot_eigenvalues(np.concatenate(all_eigvals), np.concatenate(all_static),
                     decoupler.xi, len(videos), eig_png)
    written = [eig_csv, eig_png] + write_mode_amplitudes(
        examples, decoupler, args.num_modes, args.out_dir)

    num_static = np.array([s.sum() for s in all_static])
    print(f'Koopman spectrum of {len(videos)} videos: '
          f'{num_static.mean():.2f} static modes per video on average '
          f'(xi = {decoupler.xi:g})')
    print(f'wrote {len(written)} files to {args.out_dir}')
    return written


if __name__ == '__main__':
    main()
