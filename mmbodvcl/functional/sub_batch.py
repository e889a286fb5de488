"""Which clips of a batch the lower level of bi-level training sees.

The lower level (the ``k`` steps on ``L_pred`` and the finite-difference
passes of the hypergradient) may run on a sub-batch of ``m`` of the ``B``
clips while the upper level keeps all of them: ``1 + 2 f`` passes per
iteration for ITD-FD (``k = 1``) instead of 3, ``f = m / B``.

The rule: a cyclic window of ``m`` consecutive positions that starts at
``o * m`` (mod ``B``), ``o`` drawn uniformly from ``0 .. ceil(B / m) - 1``
by a private generator seeded with ``(seed, iteration)``. Why this rule:

* reproducible and exact under resume: the choice is a function of the
  seed and the iteration counter only (no global random state is read or
  advanced), so a resumed run picks what the uninterrupted run picked;
* the same on every data-parallel rank (nothing depends on the rank), and
  ``W`` ranks with ``B`` clips each pick exactly the clips one process with
  ``W * B`` clips picks for ``W * m``: MMEngine's ``DefaultSampler`` deals
  the global batch out round-robin (position ``i`` of rank ``r`` is global
  position ``i * W + r``), which maps the window of positions
  ``[o m, o m + m)`` on every rank onto the global window ``[o m W,
  (o m + m) W)`` (``o`` ranges over the same ``ceil(B / m)`` values);
* unbiased: the sampler shuffles, so any window of a batch is a uniform
  random subset of the data (every position is used equally often when
  ``m`` divides ``B``).

A fraction ``f`` gives ``m = round(f B)`` per rank, so the ``W``-rank and
one-process choices coincide when ``f B`` is a whole number.
"""
import math
from numbers import Integral, Real
from typing import Union

import torch
from torch import Tensor

LowerBatch = Union[float, int]


def check_lower_batch(lower_batch: LowerBatch, name: str = 'lower_batch'
                      ) -> None:
    """Refuse anything but a fraction in (0, 1] (float) or a count >= 1
    (int), naming ``name`` and the value."""
    if isinstance(lower_batch, bool) or not isinstance(lower_batch, Real):
        raise TypeError(
            f'{name} must be a fraction of the batch in (0, 1] (float) or '
            f'a number of clips >= 1 (int), got {lower_batch!r}')
    if isinstance(lower_batch, Integral):
        if lower_batch < 1:
            raise ValueError(f'{name} as a number of clips must be >= 1, '
                             f'got {lower_batch!r}')
    elif not 0.0 < lower_batch <= 1.0:
        raise ValueError(f'{name} as a fraction of the batch must be in '
                         f'(0, 1], got {lower_batch!r}')


def sub_batch_size(batch_size: int,
                   lower_batch: LowerBatch,
                   min_clips: int = 1,
                   name: str = 'lower_batch') -> int:
    """``m``: ``lower_batch`` clips (int) or ``round(lower_batch *
    batch_size)`` clips (float, at least 1), checked against the batch and
    the ``min_clips`` the lower loss needs."""
    check_lower_batch(lower_batch, name)
    if isinstance(lower_batch, Integral):
        size = int(lower_batch)
        if size > batch_size:
            raise ValueError(
                f'{name}={size} clips is more than the batch of '
                f'{batch_size} clips (per rank); give at most {batch_size} '
                'or a fraction in (0, 1]')
    else:
        size = max(1, round(lower_batch * batch_size))
    if size < min_clips:
        raise ValueError(
            f'{name}={lower_batch!r} gives {size} of {batch_size} clips for '
            f'the lower level, but its loss needs at least {min_clips} '
            f'clips (the decoupler\'s min_lower_clips); raise it or the '
            'batch size')
    return size


def sub_batch_indices(batch_size: int,
                      lower_batch: LowerBatch,
                      seed: int,
                      iteration: int,
                      min_clips: int = 1,
                      name: str = 'lower_batch') -> Tensor:
    """Positions (int64, ascending modulo the wrap) of the clips the lower
    level sees at ``iteration``; see the module docstring for the rule."""
    size = sub_batch_size(batch_size, lower_batch, min_clips, name)
    windows = math.ceil(batch_size / size)
    generator = torch.Generator().manual_seed(
        (int(seed) * 2**32 + int(iteration)) % 2**63)
    window = int(torch.randint(windows, (1, ), generator=generator))
    return (window * size + torch.arange(size)) % batch_size
