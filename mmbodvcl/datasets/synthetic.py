"""The controlled synthetic videos of the paper's section 5.5.

Every clip carries four binary semantics (``SEMANTICS``):

* ``simple_static``: background colour, 0 = blue, 1 = green;
* ``complex_static``: foreground shape, 0 = pentagon, 1 = circle;
* ``simple_dynamic``: background brightness over time, 0 = brightening,
  1 = darkening;
* ``complex_dynamic``: foreground trajectory, 0 = rotation (a circular
  orbit), 1 = linear translation.

Per-instance nuisance (position, size, orientation, speed, colour shades,
pixel noise) keeps instance discrimination from being trivial. The first frame
does not depend on the dynamic semantics at all (both brightness ramps start
at the same level, both trajectories at the same point), so they are only
visible in time. Scenarios (``SCENARIOS``) tie one simple semantic to one
complex semantic of the other kind with a given ``correlation`` (1.0: they
always co-occur; 0.0: independent).

Everything is generated in memory from ``(seed, index, view)`` and so is
deterministic; ``SyntheticVideoGenerator`` is the pure part and
``SyntheticVideoDataset`` its registered MMEngine dataset adapter.
"""
import math
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import numpy as np
from mmengine.dataset import BaseDataset

from mmaction.registry import DATASETS

SEMANTICS: Tuple[str, ...] = ('simple_static', 'complex_static',
                              'simple_dynamic', 'complex_dynamic')

# scenario name -> (driver semantic, correlated partner) or None.
SCENARIOS: Dict[str, Optional[Tuple[str, str]]] = {
    'i': ('simple_static', 'complex_dynamic'),
    'ii': ('simple_dynamic', 'complex_static'),
    'iii': None,
}

SCENARIO_DESCRIPTIONS: Dict[str, str] = {
    'i': 'simple static (background colour) correlated with complex dynamic '
    '(trajectory)',
    'ii': 'simple dynamic (brightness change) correlated with complex static '
    '(shape)',
    'iii': 'all four semantics independent',
}

# Subpixel precision of cv2's drawing calls (coordinates scaled by 2**4).
_SHIFT = 4


@dataclass(frozen=True)
class ClipNuisance:
    """Per-instance factors that carry no semantic label.

    Lengths are fractions of the frame's shorter side; colours are RGB in
    [0, 1].
    """
    background: Tuple[float, float, float]  # before the brightness ramp
    foreground: Tuple[float, float, float]
    radius: float
    orientation: float  # pentagon rotation, radians (constant in time)
    start: Tuple[float, float]  # (x, y) of the shape's centre in frame 0
    travel: float  # path length over the whole clip
    heading: float  # linear motion direction / orbit phase, radians
    spin: int  # orbit direction, +1 or -1
    orbit_radius: float
    ramp: float  # total relative brightness change over the clip
    noise: float  # std of the additive pixel noise


def check_scenario(scenario: str, correlation: float) -> None:
    """Raise a clear error for an unknown scenario or correlation."""
    if scenario not in SCENARIOS:
        raise ValueError(f'scenario={scenario!r} is unknown; expected one of '
                         f'{sorted(SCENARIOS)} ({SCENARIO_DESCRIPTIONS})')
    if not 0.0 <= float(correlation) <= 1.0:
        raise ValueError(
            f'correlation={correlation!r} must lie in [0, 1] (1.0: the '
            'paired semantics always co-occur, 0.0: independent)')


def sample_labels(rng: np.random.Generator, num_samples: int, scenario: str,
                  correlation: float) -> np.ndarray:
    """Draw the four binary semantics of ``num_samples`` clips.

    With probability ``correlation`` the scenario's partner semantic copies
    its driver; otherwise it is drawn independently.

    Returns:
        int64 array ``(num_samples, 4)``, columns ordered as ``SEMANTICS``.
    """
    check_scenario(scenario, correlation)
    labels = rng.integers(0, 2, size=(num_samples, len(SEMANTICS)))
    pair = SCENARIOS[scenario]
    if pair is not None:
        driver, partner = (SEMANTICS.index(name) for name in pair)
        tied = rng.random(num_samples) < correlation
        labels[tied, partner] = labels[tied, driver]
    return labels.astype(np.int64)


def sample_nuisance(rng: np.random.Generator) -> ClipNuisance:
    """Draw one clip's nuisance factors.

    Both trajectories cover 0.35-0.42 of the frame (~1.7 px per frame at
    32 px and 8 frames) from the same start; an orbit of radius 0.07-0.09
    turns by 3.9-6 radians over that length, so rotation and translation
    differ by much more than a pixel. Shapes are small enough (radius
    0.14-0.18) for ~95 % of the paths to stay inside the frame.
    """
    start = tuple(rng.uniform(0.35, 0.65, size=2))
    # Head (and orbit) towards the frame centre so paths mostly stay inside.
    towards_centre = math.atan2(0.5 - start[1], 0.5 - start[0])
    return ClipNuisance(
        background=(float(rng.uniform(0.05, 0.25)),
                    float(rng.uniform(0.45, 0.62)),
                    float(rng.uniform(0.05, 0.25))),
        foreground=(float(rng.uniform(0.85, 1.0)),
                    float(rng.uniform(0.55, 0.8)),
                    float(rng.uniform(0.55, 0.8))),
        radius=float(rng.uniform(0.14, 0.18)),
        orientation=float(rng.uniform(0, 2 * math.pi)),
        start=(float(start[0]), float(start[1])),
        travel=float(rng.uniform(0.35, 0.42)),
        heading=float(towards_centre + rng.uniform(-0.8, 0.8)),
        spin=int(rng.choice((-1, 1))),
        orbit_radius=float(rng.uniform(0.07, 0.09)),
        ramp=float(rng.uniform(0.35, 0.6)),
        noise=float(rng.uniform(0.01, 0.04)),
    )


def trajectory(nuisance: ClipNuisance, rotation: bool,
               num_frames: int) -> np.ndarray:
    """Centre of the shape in every frame, as fractions of the frame.

    Both trajectories start at ``nuisance.start`` and cover
    ``nuisance.travel`` at constant speed: a circular orbit
    (``rotation=True``) or a straight line.

    Returns:
        ``(num_frames, 2)`` array of ``(x, y)``.
    """
    steps = np.arange(num_frames, dtype=np.float64)
    speed = nuisance.travel / (num_frames - 1)
    start = np.asarray(nuisance.start)
    if rotation:
        phase = nuisance.heading + math.pi  # orbit centre lies along heading
        centre = start - nuisance.orbit_radius * np.array(
            [math.cos(phase), math.sin(phase)])
        angles = phase + nuisance.spin * steps * speed / nuisance.orbit_radius
        path = centre + nuisance.orbit_radius * np.stack(
            [np.cos(angles), np.sin(angles)], axis=1)
    else:
        direction = np.array(
            [math.cos(nuisance.heading),
             math.sin(nuisance.heading)])
        path = start + steps[:, None] * speed * direction
    # Keep the whole shape inside the frame; it slides along an edge if not.
    return np.clip(path, nuisance.radius, 1.0 - nuisance.radius)


def _shape_mask(height: int, width: int, centre: Tuple[float, float],
                radius: float, pentagon: bool,
                orientation: float) -> np.ndarray:
    """Anti-aliased coverage in [0, 1] of the shape, ``(height, width)``."""
    side = min(height, width)
    scale = 1 << _SHIFT
    cx, cy = centre[0] * width, centre[1] * height
    r = radius * side
    mask = np.zeros((height, width), np.uint8)
    if pentagon:
        # A pentagon of the circle's area, so size does not tell them apart.
        area_scale = math.sqrt(math.pi / (2.5 * math.sin(2 * math.pi / 5)))
        angles = orientation + 2 * math.pi * np.arange(5) / 5
        points = np.stack([cx + area_scale * r * np.cos(angles),
                           cy + area_scale * r * np.sin(angles)], axis=1)
        cv2.fillPoly(mask, [np.round(points * scale).astype(np.int32)], 255,
                     cv2.LINE_AA, _SHIFT)
    else:
        cv2.circle(mask, (round(cx * scale), round(cy * scale)),
                   round(r * scale), 255, -1, cv2.LINE_AA, _SHIFT)
    return mask.astype(np.float32) / 255.0


def render_clip(labels: Sequence[int],
                nuisance: ClipNuisance,
                num_frames: int,
                size: Tuple[int, int],
                noise_rng: np.random.Generator) -> np.ndarray:
    """Render one clip.

    Args:
        labels: The four binary semantics, ordered as ``SEMANTICS``.
        nuisance: The clip's nuisance factors.
        num_frames: T.
        size: ``(height, width)``.
        noise_rng: Source of the per-pixel noise.

    Returns:
        uint8 RGB array ``(T, H, W, 3)``.
    """
    simple_static, complex_static, simple_dynamic, complex_dynamic = (
        int(value) for value in labels)
    height, width = size
    background = np.array(nuisance.background, np.float32)
    if simple_static == 0:  # blue: the dominant shade goes to channel B
        background = background[[0, 2, 1]]
    foreground = np.array(nuisance.foreground, np.float32)
    sign = 1.0 if simple_dynamic == 0 else -1.0
    ramp = 1.0 + sign * nuisance.ramp * np.linspace(0.0, 1.0, num_frames)
    path = trajectory(nuisance, rotation=complex_dynamic == 0,
                      num_frames=num_frames)
    frames = np.empty((num_frames, height, width, 3), np.float32)
    for t in range(num_frames):
        mask = _shape_mask(height, width, tuple(path[t]), nuisance.radius,
                           pentagon=complex_static == 0,
                           orientation=nuisance.orientation)[..., None]
        frames[t] = (1.0 - mask) * (background * ramp[t]) + mask * foreground
    frames += noise_rng.normal(0.0, nuisance.noise, frames.shape).astype(
        np.float32)
    return np.clip(np.rint(frames * 255.0), 0, 255).astype(np.uint8)


def jitter_nuisance(nuisance: ClipNuisance,
                    rng: np.random.Generator) -> ClipNuisance:
    """A second view of the same instance: small shifts of position and
    colour shades (the pixel noise is redrawn by the caller)."""
    shift = rng.uniform(-0.04, 0.04, size=2)
    shade = rng.uniform(0.93, 1.07, size=2)
    return ClipNuisance(
        **{
            **nuisance.__dict__,
            'start': (nuisance.start[0] + float(shift[0]),
                      nuisance.start[1] + float(shift[1])),
            'background':
            tuple(float(c * shade[0]) for c in nuisance.background),
            'foreground':
            tuple(float(min(1.0, c * shade[1])) for c in nuisance.foreground),
        })


VIEW_MODES = ('jitter', 'resample')


class SyntheticVideoGenerator:
    """Deterministic source of synthetic clips and their semantics.

    Clip ``index`` and its views depend only on ``(seed, index, view)``, so
    two generators with the same arguments produce identical data.

    Views (the positives of contrastive learning) come in two kinds:
    ``'jitter'`` keeps the instance and shifts its position and colour shades
    a little; ``'resample'`` redraws every nuisance factor, so two views share
    exactly the four semantics (the augmentation family is all nuisance).

    Args:
        num_samples: Number of clips.
        scenario: ``'i'``, ``'ii'`` or ``'iii'`` (see ``SCENARIOS``).
        correlation: Strength of the scenario's tie, in [0, 1].
        num_frames: T.
        size: ``(height, width)`` or one int for square frames.
        seed: Seed of labels, nuisance and noise.
        view_mode: ``'jitter'`` or ``'resample'`` (see above).
    """

    def __init__(self,
                 num_samples: int,
                 scenario: str = 'iii',
                 correlation: float = 1.0,
                 num_frames: int = 16,
                 size=64,
                 seed: int = 0,
                 view_mode: str = 'resample') -> None:
        if view_mode not in VIEW_MODES:
            raise ValueError(f'view_mode={view_mode!r} is unknown; expected '
                             f'one of {VIEW_MODES}')
        if num_samples < 1:
            raise ValueError(f'num_samples={num_samples!r} must be >= 1')
        if num_frames < 2:
            raise ValueError(f'num_frames={num_frames!r} must be >= 2: the '
                             'dynamic semantics need time')
        size = (size, size) if isinstance(size, int) else tuple(size)
        if len(size) != 2 or min(size) < 16:
            raise ValueError(f'size={size!r} must be (height, width) with '
                             'both >= 16 pixels')
        self.num_samples = num_samples
        self.scenario = scenario
        self.correlation = float(correlation)
        self.num_frames = num_frames
        self.size: Tuple[int, int] = (int(size[0]), int(size[1]))
        self.seed = seed
        self.view_mode = view_mode
        self.labels = sample_labels(
            np.random.default_rng([seed, 0]), num_samples, scenario,
            correlation)

    def nuisance(self, index: int) -> ClipNuisance:
        return sample_nuisance(np.random.default_rng([self.seed, 1, index]))

    def clip(self, index: int, view: Optional[int] = None) -> np.ndarray:
        """Clip ``index`` as uint8 ``(T, H, W, 3)``; ``view=None`` is the
        canonical rendering, ``view=k`` the k-th view (``view_mode``)."""
        if not 0 <= index < self.num_samples:
            raise IndexError(f'index {index} out of range for '
                             f'{self.num_samples} synthetic clips')
        nuisance = self.nuisance(index)
        if view is None:
            noise_rng = np.random.default_rng([self.seed, 2, index])
        else:
            view_rng = np.random.default_rng([self.seed, 3, index, view])
            if self.view_mode == 'jitter':
                nuisance = jitter_nuisance(nuisance, view_rng)
            else:
                nuisance = sample_nuisance(view_rng)
            noise_rng = view_rng
        return render_clip(self.labels[index], nuisance, self.num_frames,
                           self.size, noise_rng)

    def views(self, index: int, num_views: int,
              epoch: int = 0) -> List[np.ndarray]:
        """``num_views`` views of clip ``index``; ``epoch`` picks fresh ones
        so that repeated passes do not see identical views."""
        return [self.clip(index, view=epoch * num_views + v)
                for v in range(num_views)]


@DATASETS.register_module()
class SyntheticVideoDataset(BaseDataset):
    """Registered adapter of :class:`SyntheticVideoGenerator`.

    Each item's ``imgs`` is a list of ``num_views * T`` RGB frames
    ``(H, W, 3)`` uint8, view-major (``num_clips = num_views``,
    ``clip_len = T``), so MMAction2's ``FormatShape('NCTHW')`` and
    ``PackActionInputs`` give ``inputs`` of shape ``(V, 3, T, H, W)``.
    ``label`` is the semantic named by ``target``; all four are in
    ``semantics``.

    Args:
        num_samples, scenario, correlation, num_frames, size, seed,
            view_mode: see :class:`SyntheticVideoGenerator`.
        num_views: Views per clip (1: the canonical rendering).
        target: Which semantic is ``label``.
        pipeline: MMAction2 transforms applied to each item.
        test_mode: Passed to ``BaseDataset``.
    """

    def __init__(self,
                 num_samples: int = 1024,
                 scenario: str = 'iii',
                 correlation: float = 1.0,
                 num_frames: int = 16,
                 size=64,
                 seed: int = 0,
                 view_mode: str = 'resample',
                 num_views: int = 2,
                 target: str = 'complex_dynamic',
                 pipeline: Sequence = (),
                 test_mode: bool = False) -> None:
        if target not in SEMANTICS:
            raise ValueError(f'target={target!r} is not a synthetic '
                             f'semantic; expected one of {SEMANTICS}')
        if num_views < 1:
            raise ValueError(f'num_views={num_views!r} must be >= 1')
        self.generator = SyntheticVideoGenerator(
            num_samples, scenario, correlation, num_frames, size, seed,
            view_mode)
        self.num_views = num_views
        self.target = target
        super().__init__(
            ann_file='', pipeline=list(pipeline), test_mode=test_mode,
            serialize_data=False)

    def load_data_list(self) -> List[dict]:
        column = SEMANTICS.index(self.target)
        return [
            dict(
                index=index,
                label=int(labels[column]),
                semantics=dict(zip(SEMANTICS, (int(v) for v in labels))))
            for index, labels in enumerate(self.generator.labels)
        ]

    def get_data_info(self, idx: int) -> dict:
        info = super().get_data_info(idx)
        index = info['index']
        if self.num_views == 1:
            clips = [self.generator.clip(index)]
        else:
            clips = self.generator.views(index, self.num_views)
        num_frames = self.generator.num_frames
        info.update(
            imgs=[frame for clip in clips for frame in clip],
            num_clips=len(clips),
            clip_len=num_frames,
            total_frames=num_frames,
            frame_inds=np.tile(np.arange(num_frames), len(clips)),
            start_index=0,
            modality='RGB',
            original_shape=self.generator.size,
            img_shape=self.generator.size)
        return info
