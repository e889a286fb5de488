"""Figures, ``results.json`` and ``report.md`` of the synthetic experiments.

The figures follow the paper's Figures 6 (gradient norms and per-semantic
accuracy under correlation, unified vs decoupled), 7 (no correlation) and the
Koopman eigenvalue spectrum of experiment 2.
"""
import json
import math
import os.path as osp
from typing import Dict, List, Optional

import matplotlib

matplotlib.use('Agg')  # files only; no display on servers and in CI
import matplotlib.pyplot as plt  # noqa: E402

from mmbodvcl.datasets.synthetic import SEMANTICS  # noqa: E402

_COLOURS = dict(simple_static='tab:blue', complex_static='tab:cyan',
                simple_dynamic='tab:red', complex_dynamic='tab:orange')
_PAIR_NAMES = dict(i=('colour', 'trajectory'), ii=('brightness', 'shape'))
_STYLES = dict(simple_static='-', complex_static='--', simple_dynamic='-',
               complex_dynamic='--')


def _accuracy_axes(ax, run: dict, title: str) -> None:
    for name in SEMANTICS:
        ax.plot(run['probe_steps'], run['accuracy'][name], _STYLES[name],
                color=_COLOURS[name], label=name, marker='o', markersize=3)
    ax.set_ylim(0.4, 1.02)
    ax.axhline(0.5, color='grey', linewidth=0.6, linestyle=':')
    ax.set_xlabel('iteration')
    ax.set_ylabel('linear-probe accuracy of Z')
    ax.set_title(title, fontsize=9)


def _grad_axes(ax, run: dict, title: str) -> None:
    ax.plot(run['grad_norm_static'], color='tab:blue', linewidth=0.8,
            label=r'$\|\nabla_{\theta_A} L\|$ (static stream)')
    ax.plot(run['grad_norm_dynamic'], color='tab:red', linewidth=0.8,
            label=r'$\|\nabla_{\theta_M} L\|$ (dynamic stream)')
    ax.set_yscale('log')
    ax.set_xlabel('iteration')
    ax.set_ylabel('gradient norm')
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)


def plot_two_stream(experiment: Dict[str, Dict[str, dict]],
                    out_dir: str) -> List[str]:
    """Figure 6 (correlated scenarios) and Figure 7 (independent one).

    Args:
        experiment: ``{scenario: {loss: run}}`` from ``run_two_stream``.
        out_dir: Where the PNGs go.

    Returns:
        The written file paths.
    """
    paths = []
    correlated = [s for s in ('i', 'ii') if s in experiment]
    if correlated:
        fig, axes = plt.subplots(len(correlated), 3,
                                 figsize=(13, 3.6 * len(correlated)),
                                 squeeze=False)
        for row, scenario in enumerate(correlated):
            runs = experiment[scenario]
            pair = ' ~ '.join(_PAIR_NAMES[scenario])
            tag = f'scenario ({scenario}): {pair}'
            _grad_axes(axes[row, 0], runs['unified'],
                       f'gradient norms, unified loss\n{tag}')
            _accuracy_axes(axes[row, 1], runs['unified'],
                           f'accuracy, unified loss\n{tag}')
            _accuracy_axes(axes[row, 2], runs['decoupled'],
                           f'accuracy, decoupled loss\n{tag}')
        axes[0, 1].legend(fontsize=7, loc='lower right')
        fig.tight_layout()
        paths.append(osp.join(out_dir, 'fig6_correlated.png'))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    if 'iii' in experiment:
        runs = experiment['iii']
        fig, axes = plt.subplots(1, 1 + len(runs),
                                 figsize=(4.4 * (1 + len(runs)), 3.6))
        _grad_axes(axes[0], next(iter(runs.values())),
                   f'gradient norms, {next(iter(runs))} loss, '
                   'no correlation')
        for ax, (loss, run) in zip(axes[1:], runs.items()):
            _accuracy_axes(ax, run, f'accuracy, {loss} loss, no correlation')
        axes[1].legend(fontsize=7, loc='lower right')
        fig.tight_layout()
        paths.append(osp.join(out_dir, 'fig7_independent.png'))
        fig.savefig(paths[-1], dpi=110)
        plt.close(fig)
    return paths


def plot_spectrum(spectra: Dict[str, dict], xi: float, out_path: str) -> str:
    """Koopman eigenvalues of evaluation clips in the complex plane with the
    unit circle and the static disc ``|lambda - 1| < xi``.

    Args:
        spectra: ``{panel title: dict(real=[...], imag=[...])}``.
        xi: The split threshold used.
        out_path: PNG path.
    """
    fig, axes = plt.subplots(1, len(spectra), figsize=(4.2 * len(spectra),
                                                       4.2), squeeze=False)
    circle = [math.cos(2 * math.pi * k / 200) for k in range(201)]
    circle_y = [math.sin(2 * math.pi * k / 200) for k in range(201)]
    for ax, (title, spectrum) in zip(axes[0], spectra.items()):
        ax.plot(circle, circle_y, color='grey', linewidth=0.6)
        ax.add_patch(plt.Circle((1, 0), xi, facecolor='none', zorder=3,
                                edgecolor='tab:blue', linewidth=1.5,
                                label=rf'static: $|\lambda-1|<\xi$={xi}'))
        ax.scatter(spectrum['real'], spectrum['imag'], s=4, alpha=0.4,
                   color='tab:red')
        ax.set_aspect('equal')
        ax.set_xlim(-1.3, 1.6)
        ax.set_ylim(-1.45, 1.45)
        ax.set_xlabel('Re $\\lambda$')
        ax.set_ylabel('Im $\\lambda$')
        ax.set_title(title, fontsize=9)
        ax.legend(fontsize=7, loc='lower left')
    fig.tight_layout()
    fig.savefig(out_path, dpi=110)
    plt.close(fig)
    return out_path


def accuracy_row(accuracy: Optional[Dict[str, float]]) -> str:
    """Markdown table cells of the four semantics, in ``SEMANTICS`` order;
    '-' for an embedding the model does not have."""
    if accuracy is None:
        return ' | '.join('-' for _ in SEMANTICS)
    return ' | '.join(f'{accuracy[name]:.2f}' for name in SEMANTICS)


def accuracy_header(first: List[str]) -> str:
    columns = first + list(SEMANTICS)
    return ('| ' + ' | '.join(columns) + ' |\n|' +
            '---|' * len(columns))


def write_json(results: dict, out_path: str) -> str:
    with open(out_path, 'w', encoding='utf-8') as f:
        json.dump(results, f, indent=1)
    return out_path


def figure_links(paths: List[Optional[str]]) -> str:
    return '\n'.join(f'![{osp.basename(p)}]({osp.basename(p)})'
                     for p in paths if p)
