"""Probes of a model pretrained on the synthetic videos (experiments 2, 3).

Linear probes read each semantic from the embeddings the model exposes
through ``probe_embeddings`` (``backbone``, ``unified`` and, where the model
has them, ``static`` / ``dynamic``) of evaluation clips whose semantics are
independent. A model whose decoupler splits per-frame embeddings by a
threshold (``decoupler.split(z, xi)`` and ``decoupler.xi``: the Koopman
split) is also probed at other thresholds, and the eigenvalues of its split
are kept for the spectrum plot.
"""
from contextlib import contextmanager
from typing import Dict, Iterator, List, Optional, Sequence

import torch
from torch import Tensor, nn

from .probe import probe_accuracies
from .views import ViewPool


@contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """Eval mode and no gradients inside; the training mode is restored."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def evaluation_clips(model: nn.Module, pool: ViewPool,
                     chunk: int = 128) -> List[Tensor]:
    """The pool's canonical clips through the model's data preprocessor, in
    chunks of ``chunk`` clips ``(n, 3, T, H, W)``."""
    chunks = []
    with evaluating(model):
        for start in range(0, len(pool), chunk):
            views = pool.views[start:start + chunk, :1]  # (n, 1, T, H, W, 3)
            batch = dict(inputs=list(views.permute(0, 1, 5, 2, 3, 4)),
                         data_samples=None)
            chunks.append(model.data_preprocessor(batch, False)['inputs'][0])
    return chunks


def probe_model(model: nn.Module, pool: ViewPool,
                xis: Sequence[float] = ()) -> dict:
    """Probe accuracies of every embedding of ``model.probe_embeddings``,
    ``{'accuracies': {name: {semantic: accuracy}}}``, plus ``spectrum``
    (:func:`split_spectrum`) where the model's decoupler has a split."""
    chunks = evaluation_clips(model, pool)
    encoded: Dict[str, List[Tensor]] = {}
    for clips in chunks:
        for name, value in model.probe_embeddings(clips).items():
            encoded.setdefault(name, []).append(value)
    record: dict = dict(accuracies={
        name: probe_accuracies(torch.cat(values), pool.labels)
        for name, values in encoded.items()
    })
    spectrum = split_spectrum(model, chunks, pool.labels, xis)
    if spectrum is not None:
        record['spectrum'] = spectrum
    return record


def split_spectrum(model: nn.Module, chunks: List[Tensor], labels: Tensor,
                   xis: Sequence[float]) -> Optional[dict]:
    """For a decoupler with ``split(z, xi)`` and ``xi``: the probes of the
    split's static and dynamic parts at its own threshold and at ``xis``
    (``by_xi[str(xi)]``: ``static``, ``dynamic``, ``separation``,
    ``num_static`` per clip), the threshold ``xi`` and the eigenvalues of
    the split at it (``eigvals``: ``real``, ``imag``); None otherwise."""
    decoupler = getattr(model, 'decoupler', None)
    if not (callable(getattr(decoupler, 'split', None))
            and hasattr(decoupler, 'xi') and hasattr(model, 'encode')):
        return None
    with evaluating(model):
        z = torch.cat([model.encode(clips) for clips in chunks])
        own = decoupler.split(z)
        by_xi = {}
        for xi in (decoupler.xi, ) + tuple(x for x in xis
                                           if x != decoupler.xi):
            split = decoupler.split(z, xi=xi)
            static = probe_accuracies(split.static, labels)
            dynamic = probe_accuracies(split.dynamic, labels)
            by_xi[str(xi)] = dict(
                static=static, dynamic=dynamic,
                separation=separation_score(static, dynamic),
                num_static=float(split.num_static.float().mean()))
    eigvals = own.eigvals.flatten()
    return dict(xi=float(decoupler.xi), by_xi=by_xi,
                eigvals=dict(real=eigvals.real.tolist(),
                             imag=eigvals.imag.tolist()),
                static_mask=own.static_mask.flatten().tolist())


def separation_score(static: Dict[str, float],
                     dynamic: Dict[str, float]) -> float:
    """Mean probe accuracy of the static semantics from the static part and
    of the dynamic semantics from the dynamic part: 1.0 when each part
    carries its own kind."""
    return (static['simple_static'] + static['complex_static'] +
            dynamic['simple_dynamic'] + dynamic['complex_dynamic']) / 4


def eigenvalue_summary(spectrum: dict) -> Dict[str, float]:
    """Where the split's eigenvalues lie: the share it calls static (by
    the xi disc, or by rank for the batch operator's ``static_size``), the
    share inside the disc ``|lambda - 1| < xi``, the median distance from
    1, and the gap between the static set and the rest (the largest static
    and the smallest dynamic distance; NaN where a set is empty)."""
    real = torch.tensor(spectrum['eigvals']['real'])
    imag = torch.tensor(spectrum['eigvals']['imag'])
    distance = torch.hypot(real - 1, imag)
    static = torch.tensor(spectrum['static_mask'], dtype=torch.bool)
    nan = torch.tensor(float('nan'))
    return dict(
        static_fraction=float(static.float().mean()),
        disc_fraction=float((distance < spectrum['xi']).float().mean()),
        median_distance=float(distance.median()),
        static_max_distance=float(distance[static].max()
                                  if static.any() else nan),
        dynamic_min_distance=float(distance[~static].min()
                                   if (~static).any() else nan))
