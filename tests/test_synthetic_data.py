"""The synthetic videos of section 5.5: each semantic is what it claims."""
import dataclasses
import math

import numpy as np
import pytest
import torch
from mmaction.registry import DATASETS
from mmengine.dataset import pseudo_collate
from mmengine.registry import init_default_scope

import mmbodvcl  # noqa: F401  (registration)
from mmbodvcl.datasets.synthetic import (SEMANTICS, SyntheticVideoGenerator,
                                         render_clip, sample_labels,
                                         trajectory)
from mmbodvcl.experiments.probe import (linear_probe_accuracy,
                                        split_train_test)

SIZE = 48
FRAMES = 8


def _render(generator, index, labels, noise=True):
    nuisance = generator.nuisance(index)
    if not noise:
        nuisance = dataclasses.replace(nuisance, noise=0.0)
    return render_clip(labels, nuisance, FRAMES, (SIZE, SIZE),
                       np.random.default_rng(index)).astype(np.float32)


@pytest.fixture(scope='module')
def generator():
    return SyntheticVideoGenerator(64, 'iii', num_frames=FRAMES, size=SIZE,
                                   seed=3)


def test_same_seed_same_data_other_seed_other_data():
    a = SyntheticVideoGenerator(8, 'i', 0.7, FRAMES, 32, seed=5,
                                view_mode='jitter')
    b = SyntheticVideoGenerator(8, 'i', 0.7, FRAMES, 32, seed=5,
                                view_mode='jitter')
    c = SyntheticVideoGenerator(8, 'i', 0.7, FRAMES, 32, seed=6,
                                view_mode='jitter')
    np.testing.assert_array_equal(a.labels, b.labels)
    for index in range(8):
        np.testing.assert_array_equal(a.clip(index), b.clip(index))
        np.testing.assert_array_equal(a.clip(index, view=1),
                                      b.clip(index, view=1))
    assert not np.array_equal(a.clip(0), c.clip(0))
    # Views of one clip differ (jitter, fresh noise), but only a little.
    first, second = a.views(0, 2)
    assert not np.array_equal(first, second)
    assert np.abs(first.astype(float) - second.astype(float)).mean() < 40
    assert a.clip(0).shape == (FRAMES, 32, 32, 3)
    assert a.clip(0).dtype == np.uint8


def test_resampled_views_share_only_the_semantics():
    generator = SyntheticVideoGenerator(4, 'iii', num_frames=FRAMES, size=32,
                                        seed=5, view_mode='resample')
    first, second = generator.views(0, 2)
    # Other position, size, shades: far apart in pixels ...
    assert np.abs(first.astype(float) - second.astype(float)).mean() > 5
    # ... but the same background colour class in every frame.
    for view in (first, second):
        green_minus_blue = np.median(
            view[..., 1].astype(float) - view[..., 2], axis=(1, 2))
        expected = 1.0 if generator.labels[0, 0] == 1 else -1.0
        assert (np.sign(green_minus_blue) == expected).all()
    np.testing.assert_array_equal(generator.views(0, 2)[1], second)


@pytest.mark.parametrize('scenario,pair', [
    ('i', ('simple_static', 'complex_dynamic')),
    ('ii', ('simple_dynamic', 'complex_static')),
])
def test_scenarios_tie_their_pair_with_the_given_strength(scenario, pair):
    driver, partner = (SEMANTICS.index(name) for name in pair)
    rng = np.random.default_rng(0)
    tied = sample_labels(rng, 4000, scenario, 1.0)
    assert (tied[:, driver] == tied[:, partner]).all()
    half = sample_labels(rng, 4000, scenario, 0.5)
    agreement = (half[:, driver] == half[:, partner]).mean()
    assert abs(agreement - 0.75) < 0.03  # 0.5 tied + 0.5 * 0.5 by chance
    others = [i for i in range(4) if i not in (driver, partner)]
    assert abs((tied[:, others[0]] == tied[:, others[1]]).mean() - 0.5) < 0.03
    for column in range(4):  # every semantic stays balanced
        assert abs(tied[:, column].mean() - 0.5) < 0.03


def test_independent_scenario_has_no_ties():
    labels = sample_labels(np.random.default_rng(1), 4000, 'iii', 1.0)
    for i in range(4):
        for j in range(i + 1, 4):
            assert abs((labels[:, i] == labels[:, j]).mean() - 0.5) < 0.03


def test_bad_arguments_are_refused_with_the_value():
    with pytest.raises(ValueError, match="scenario='iv'"):
        SyntheticVideoGenerator(4, 'iv')
    with pytest.raises(ValueError, match='correlation=1.5'):
        SyntheticVideoGenerator(4, 'i', correlation=1.5)
    with pytest.raises(ValueError, match='num_frames=1'):
        SyntheticVideoGenerator(4, num_frames=1)
    with pytest.raises(ValueError, match="view_mode='crop'"):
        SyntheticVideoGenerator(4, view_mode='crop')
    with pytest.raises(IndexError, match='index 4'):
        SyntheticVideoGenerator(4, size=32).clip(4)
    with pytest.raises(ValueError, match="target='shape'"):
        DATASETS.build(dict(type='SyntheticVideoDataset', num_samples=2,
                            target='shape'))


def test_simple_static_background_colour_holds_in_every_frame(generator):
    for index in range(16):
        labels = generator.labels[index]
        clip = _render(generator, index, labels)
        # Median over pixels ignores the shape (well under half the frame).
        green_minus_blue = np.median(clip[..., 1] - clip[..., 2], axis=(1, 2))
        expected = 1.0 if labels[0] == 1 else -1.0
        assert (np.sign(green_minus_blue) == expected).all(), index


def test_complex_static_shape_is_constant_and_tells_pentagon_from_circle(
        generator):
    for index in range(16):
        for shape in (0, 1):
            labels = generator.labels[index].copy()
            labels[1] = shape
            clip = _render(generator, index, labels, noise=False)
            # The foreground is the only red-dominant region.
            mask = clip[..., 0] > 180
            areas = mask.sum(axis=(1, 2))
            assert areas.min() > 30 and areas.max() - areas.min() <= 0.12 * (
                areas.mean()), (index, shape, areas)
            # Farthest foreground pixel from the centroid, relative to the
            # radius of a disc of the same area: ~1.1 pentagon, ~1.0 circle.
            ratios = []
            for frame_mask in mask:
                ys, xs = np.nonzero(frame_mask)
                spread = np.hypot(ys - ys.mean(), xs - xs.mean()).max()
                ratios.append(spread / np.sqrt(frame_mask.sum() / np.pi))
            ratios = np.array(ratios)
            if shape == 0:
                assert (ratios > 1.04).all(), (index, ratios)
            else:
                assert (ratios < 1.04).all(), (index, ratios)


def test_dynamic_semantics_are_invisible_in_the_first_frame(generator):
    for index in range(16):
        labels = generator.labels[index].copy()
        clips = []
        for simple_dynamic in (0, 1):
            for complex_dynamic in (0, 1):
                labels[2:] = (simple_dynamic, complex_dynamic)
                clips.append(_render(generator, index, labels))
        for clip in clips[1:]:
            np.testing.assert_array_equal(clip[0], clips[0][0])
            assert not np.array_equal(clip, clips[0])


def test_brightness_slope_sign_is_the_simple_dynamic_label(generator):
    for index in range(16):
        labels = generator.labels[index].copy()
        for direction in (0, 1):
            labels[2] = direction
            clip = _render(generator, index, labels)
            level = np.median(clip.max(axis=-1), axis=(1, 2))
            slope = np.polyfit(np.arange(FRAMES), level, 1)[0]
            assert (slope > 0) == (direction == 0), (index, slope)


def test_trajectories_rotate_or_translate_from_the_same_start(generator):
    inside = 0
    for index in range(len(generator.labels)):
        nuisance = generator.nuisance(index)
        orbit = trajectory(nuisance, rotation=True, num_frames=FRAMES)
        line = trajectory(nuisance, rotation=False, num_frames=FRAMES)
        np.testing.assert_allclose(orbit[0], line[0])
        bounds = (nuisance.radius, 1 - nuisance.radius)
        if np.isin(np.concatenate([orbit, line]), bounds).any():
            continue  # slid along an edge; rare by design
        inside += 1
        # Both move at the same constant speed ...
        line_steps, orbit_steps = np.diff(line, axis=0), np.diff(orbit,
                                                                 axis=0)
        np.testing.assert_allclose(np.linalg.norm(line_steps, axis=1),
                                   nuisance.travel / (FRAMES - 1))
        np.testing.assert_allclose(np.linalg.norm(orbit_steps, axis=1),
                                   np.linalg.norm(orbit_steps[0]))
        # ... the line in one direction, the orbit turning every step.
        headings = np.arctan2(line_steps[:, 1], line_steps[:, 0])
        assert np.ptp(headings) < 1e-9
        turn = np.diff(np.arctan2(orbit_steps[:, 1], orbit_steps[:, 0]))
        turn = (turn + np.pi) % (2 * np.pi) - np.pi
        assert (np.abs(turn) > 0.1).all()
        # Most of a turn: the classes differ by far more than a pixel.
        assert np.abs(turn.sum()) > 3.0
    assert inside >= 0.9 * len(generator.labels)


def chance_bound(labels: torch.Tensor) -> float:
    """A test accuracy that features carrying nothing of ``labels`` exceed
    with probability ~3e-5: each prediction is then independent of its
    label, so right with probability at most the majority rate ``p``, and a
    binomial share over ``n`` labels passes ``p + 4 sqrt(p (1 - p) / n)``
    (4 standard deviations) that rarely."""
    rate = float(labels.float().mean())
    rate = max(rate, 1 - rate)
    return rate + 4 * math.sqrt(rate * (1 - rate) / len(labels))


def test_first_frame_probe_sees_statics_but_not_dynamics():
    """A linear probe on the first frame's pixels learns background colour
    but stays at chance on both dynamic semantics; on frame differences it
    learns the brightness change."""
    generator = SyntheticVideoGenerator(400, 'iii', num_frames=FRAMES,
                                        size=32, seed=11)
    clips = torch.from_numpy(
        np.stack([generator.clip(i) for i in range(400)])).float() / 255
    labels = torch.from_numpy(generator.labels)
    train, test = split_train_test(400)
    chance = [chance_bound(labels[test, i]) for i in range(len(SEMANTICS))]
    column = {name: i for i, name in enumerate(SEMANTICS)}
    first = clips[:, 0, ::4, ::4]  # 8x8 RGB pixels
    accuracy = linear_probe_accuracy(first.flatten(1), labels, train, test)
    # The first frame does not depend on the dynamic semantics (both ramps
    # and both trajectories start alike) ...
    for name in ('simple_dynamic', 'complex_dynamic'):
        assert accuracy[column[name]] < chance[column[name]], name
    # ... and holds the background colour: green minus blue over its pixels
    # names it in every clip (background G or B 0.45-0.62, the other 0.05-
    # 0.25; the foreground's G and B within 0.25 of each other), and the
    # probe learns it.
    green = (first[..., 1] - first[..., 2]).mean(dim=(1, 2)) > 0
    assert torch.equal(green.long(), labels[:, column['simple_static']].long())
    assert accuracy[column['simple_static']] > chance[column['simple_static']]
    # Frame differences: the mean change names the ramp's direction in
    # every clip (0 = brightening), and the probe learns it.
    mean_change = (clips[:, 1:] - clips[:, :-1]).mean(dim=(2, 3))  # (N,T-1,3)
    darkening = mean_change.sum(dim=(1, 2)) < 0
    assert torch.equal(darkening.long(),
                       labels[:, column['simple_dynamic']].long())
    change = linear_probe_accuracy(mean_change.flatten(1), labels, train,
                                   test)
    assert change[column['simple_dynamic']] > chance[column['simple_dynamic']]


def test_registered_dataset_packs_views_through_mmaction_transforms():
    init_default_scope('mmaction')  # as the Runner does for mmaction configs
    dataset = DATASETS.build(
        dict(type='SyntheticVideoDataset', num_samples=6, scenario='ii',
             correlation=1.0, num_frames=4, size=32, seed=2, num_views=2,
             target='complex_static',
             pipeline=[dict(type='FormatShape', input_format='NCTHW'),
                       dict(type='PackMultiViewInputs')]))
    assert len(dataset) == 6
    item = dataset[3]
    assert item['inputs'].shape == (2, 3, 4, 32, 32)
    assert item['inputs'].dtype == torch.uint8
    info = dataset.get_data_info(3)
    assert info['label'] == info['semantics']['complex_static']
    assert info['semantics']['complex_static'] == info['semantics'][
        'simple_dynamic']  # scenario ii, correlation 1
    # Same item twice: the same pixels (generated, not random at access).
    np.testing.assert_array_equal(item['inputs'], dataset[3]['inputs'])
    batch = pseudo_collate([dataset[0], dataset[1]])
    assert len(batch['inputs']) == 2
