"""Pareto masks and hypervolume (delegated to moocore) against brute-force references."""

import itertools

import numpy as np
import optuna
import pytest

from optuna_nas import analysis


def _brute_force_mask(points):
    return np.array([not any(np.all(other <= point) and np.any(other < point) for other in points) for point in points])


def _brute_force_volume(points, bound):
    """Integer points and bound: count the unit cells whose lower corner some point weakly dominates."""
    ranges = [range(int(b)) for b in bound]
    return sum(any(np.all(point <= np.array(corner)) for point in points) for corner in itertools.product(*ranges))


@pytest.mark.parametrize("dimensions", [2, 3, 4])
@pytest.mark.parametrize("seed", range(5))
def test_mask_and_volume_match_brute_force_on_small_fronts(dimensions, seed):
    rng = np.random.default_rng(seed)
    points = rng.integers(0, 6, size=(12, dimensions)).astype(float)
    points = np.vstack([points, points[:2]])  # identical rows are all kept
    assert np.array_equal(analysis.pareto_mask(points), _brute_force_mask(points))
    bound = [6.0] * dimensions
    expected = _brute_force_volume(points, bound)
    assert analysis.hypervolume_of_points(points, bound, ["minimize"] * dimensions) == pytest.approx(expected)


def test_maximised_objectives_and_points_outside_the_reference():
    points = [[0.9, 100.0], [0.8, 50.0], [0.5, 500.0], [float("nan"), 10.0]]  # last two add nothing
    volume = analysis.hypervolume_of_points(points, [0.0, 200.0], ["maximize", "minimize"])
    assert volume == pytest.approx(0.9 * 100 + 0.8 * 50)
    assert analysis.hypervolume_of_points([], [0.0, 1.0], ["maximize", "minimize"]) == 0.0
    assert analysis.hypervolume_of_points([[3.0]], [5.0], ["minimize"]) == 2.0
    with pytest.raises(ValueError, match="directions"):
        analysis.hypervolume_of_points(points, [0.0, 200.0], ["up", "minimize"])
    with pytest.raises(ValueError, match="reference"):
        analysis.hypervolume_of_points(points, [0.0], ["maximize", "minimize"])


def test_study_hypervolume_uses_the_default_reference():
    study = optuna.create_study(directions=["maximize", "minimize"])
    for accuracy, flops in [(0.9, 10.0), (0.8, 5.0), (0.7, 9.0)]:
        study.add_trial(optuna.trial.create_trial(values=[accuracy, flops]))
    reference = analysis.default_reference(study)
    assert reference == [0.0, pytest.approx(11.0)]
    expected = 0.8 * (11.0 - 5.0) + (0.9 - 0.8) * (11.0 - 10.0)
    assert analysis.hypervolume(study) == pytest.approx(expected)
