"""Temporal distinctiveness of per-frame features (paper Fig. 11).

For each video, one centre clip goes through the backbone; the features are
averaged over space with time kept, giving ``h_1 .. h_T``. The tool writes

* ``similarity_matrices.csv`` (video, i, j, cosine similarity of h_i, h_j),
* ``similarity_by_lag.csv``: per lag k, the mean / std over videos of each
  video's mean k-th super-diagonal, and the number of videos,
* ``per_video_similarity_by_lag.csv`` (video, lag_0 .. lag_{T-1}),
* ``similarity_matrix_mean.png`` (average over videos),
  ``similarity_matrix_<video>.png`` for the first ``--num-examples`` videos,
  ``similarity_by_lag.png`` (Fig. 11 b).

Example::

    python tools/analysis/temporal_distinctiveness.py \\
        configs/bodvcl/vsimclr_slowr50_k400.py \\
        work_dirs/vsimclr/epoch_200.pth \\
        data/ucf101/ucf101_val_split_1_videos.txt \\
        --data-root data/ucf101/videos --out-dir work_dirs/fig11
"""
import argparse
import csv
import os
import os.path as osp
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from mmbodvcl.apis.analysis import (analysis_parser, load_inputs, plt,
                                    read_video_list, save_figure, short_name)
from mmbodvcl.models.necks import PerFrameProjectionNeck


def per_frame_features(model: nn.Module, clip: Tensor) -> Tensor:
    """``h_1 .. h_T`` of eq. 26: the backbone's features of ``clip``
    ``(N, 3, T_in, H, W)`` pooled over space as the per-frame neck pools
    them, ``(N, C, T)``."""
    return PerFrameProjectionNeck.pool(model.backbone(clip))


def cosine_similarity_matrix(features: Tensor) -> Tensor:
    """Paper eq. 26 for every pair of frames.

    Args:
        features: ``(C, T)`` per-frame features of one clip.

    Returns:
        ``(T, T)`` cosine similarities, in fp32.

    Raises:
        ValueError: if a frame's feature is all zeros (cosine undefined).
    """
    features = features.float()
    norms = features.norm(dim=0)
    if bool((norms == 0).any()):
        frames = (norms == 0).nonzero().flatten().tolist()
        raise ValueError(f'frames {frames} have an all-zero feature; their '
                         'cosine similarity is undefined')
    unit = features / norms
    return unit.t() @ unit


def similarity_by_lag(similarity: Tensor) -> Tensor:
    """Mean of the k-th super-diagonal for k = 0 .. T-1.

    Args:
        similarity: ``(T, T)``.

    Returns:
        ``(T,)``; entry 0 is the diagonal (1 for cosine similarities).
    """
    num_frames = similarity.shape[0]
    return torch.stack([
        similarity.diagonal(offset=lag).mean() for lag in range(num_frames)
    ])


def plot_matrix(similarity: Tensor, title: str, path: str) -> None:
    fig, ax = plt.subplots(figsize=(4.2, 3.6))
    image = ax.imshow(similarity.numpy(), cmap='viridis', vmin=-1, vmax=1)
    ax.set_xlabel('frame j')
    ax.set_ylabel('frame i')
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, label='cosine similarity')
    save_figure(fig, path)


def plot_lags(mean: Tensor, std: Tensor, num_videos: int, path: str) -> None:
    lags = list(range(len(mean)))
    fig, ax = plt.subplots(figsize=(4.2, 3.2))
    ax.plot(lags, mean.numpy(), marker='o')
    ax.fill_between(lags, (mean - std).numpy(), (mean + std).numpy(),
                    alpha=0.25)
    ax.set_xlabel('temporal lag k')
    ax.set_ylabel('mean cosine similarity')
    ax.set_title(f'similarity by lag over {num_videos} videos', fontsize=9)
    ax.set_xticks(lags)
    save_figure(fig, path)


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = analysis_parser(__doc__)
    parser.add_argument('video_list',
                        help='VideoDataset annotation file or list of paths')
    parser.add_argument('--data-root', default='',
                        help='folder the paths of the list are relative to')
    parser.add_argument('--num-examples', type=int, default=4,
                        help='per-video matrices drawn as PNG')
    return parser.parse_args(argv)


def video_similarities(model, videos: List[str], clip) -> List[Tensor]:
    """The frame-by-frame cosine similarity matrix of every video."""
    matrices = []
    with torch.no_grad():
        for path in videos:
            features = per_frame_features(model, clip(path))[0].cpu()
            try:
                matrices.append(cosine_similarity_matrix(features))
            except ValueError as error:
                raise ValueError(f'video {path!r}: {error}') from error
    if len({m.shape[0] for m in matrices}) != 1:
        raise ValueError('videos gave different numbers of feature frames: '
                         f'{sorted({m.shape[0] for m in matrices})}')
    return matrices


def write_rows(path: str, header: List[str], rows) -> str:
    """A CSV file of ``header`` and ``rows``; returns ``path``."""
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_tables(names: List[str], matrices: List[Tensor], curves: Tensor,
                 out_dir: str) -> List[str]:
    """The similarity matrices, the mean +- std by lag and the per-video
    curves as CSV files."""
    mean, std = curves.mean(dim=0), curves.std(dim=0, unbiased=False)
    return [
        write_rows(
            osp.join(out_dir, 'similarity_matrices.csv'),
            ['video', 'i', 'j', 'similarity'],
            ([name, i, j, f'{value:.6f}']
             for name, similarity in zip(names, matrices)
             for i, row in enumerate(similarity.tolist())
             for j, value in enumerate(row))),
        write_rows(
            osp.join(out_dir, 'similarity_by_lag.csv'),
            ['lag', 'mean', 'std', 'num_videos'],
            ([lag, f'{m:.6f}', f'{s:.6f}', len(names)]
             for lag, (m, s) in enumerate(zip(mean.tolist(), std.tolist())))),
        write_rows(
            osp.join(out_dir, 'per_video_similarity_by_lag.csv'),
            ['video'] + [f'lag_{k}' for k in range(len(mean))],
            ([name] + [f'{v:.6f}' for v in curve]
             for name, curve in zip(names, curves.tolist()))),
    ]


def write_figures(names: List[str], matrices: List[Tensor], curves: Tensor,
                  num_examples: int, out_dir: str) -> List[str]:
    """The mean matrix, the first ``num_examples`` matrices and the lag
    curve as PNG files."""
    mean_png = osp.join(out_dir, 'similarity_matrix_mean.png')
    plot_matrix(torch.stack(matrices).mean(dim=0),
                f'mean over {len(names)} videos', mean_png)
    written = [mean_png]
    for index, (name, similarity) in enumerate(
            zip(names[:num_examples], matrices)):
        png = osp.join(out_dir,
                       f'similarity_matrix_{index:03d}_{short_name(name)}.png')
        plot_matrix(similarity, osp.basename(name), png)
        written.append(png)
    lag_png = osp.join(out_dir, 'similarity_by_lag.png')
    plot_lags(curves.mean(dim=0), curves.std(dim=0, unbiased=False),
              len(names), lag_png)
    return written + [lag_png]


def main(argv: Optional[Sequence[str]] = None) -> List[str]:
    """Run the tool; returns the paths it wrote."""
    args = parse_args(argv)
    videos = read_video_list(args.video_list, args.data_root)
    _, model, clip = load_inputs(args)
    os.makedirs(args.out_dir, exist_ok=True)
    matrices = video_similarities(model, videos, clip)
    curves = torch.stack([similarity_by_lag(m) for m in matrices])
    written = write_tables(videos, matrices, curves, args.out_dir)
    written += write_figures(videos, matrices, curves, args.num_examples,
                             args.out_dir)
    mean, std = curves.mean(dim=0), curves.std(dim=0, unbiased=False)
    print(f'temporal distinctiveness of {len(videos)} videos:')
    for lag, (m, s) in enumerate(zip(mean.tolist(), std.tolist())):
        print(f'  lag {lag}: {m:.4f} +- {s:.4f}')
    print(f'wrote {len(written)} files to {args.out_dir}')
    return written


if __name__ == '__main__':
    main()
