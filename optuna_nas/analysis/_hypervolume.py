"""Exact hypervolume of a set of points against a reference point."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Which rows of ``points`` (all objectives minimised) no other row dominates."""
    points = np.asarray(points, dtype=float)
    keep = np.ones(len(points), dtype=bool)
    for i, point in enumerate(points):
        dominated_by = np.all(points <= point, axis=1) & np.any(points < point, axis=1)
        keep[i] = not dominated_by.any()
    return keep


def hypervolume_of_points(
    points: Sequence[Sequence[float]], reference: Sequence[float], directions: Sequence[str]
) -> float:
    """Volume dominated by ``points`` and bounded by ``reference``.

    Args:
        points: One row per solution, one column per objective.
        reference: The bound of the volume: a point every solution should improve on, e.g.
            ``(0.0, max_flops)`` for ``("maximize", "minimize")``. Points that do not improve on it
            in every objective add nothing.
        directions: ``"maximize"`` or ``"minimize"`` per objective.

    Raises:
        ValueError: The lengths disagree or a direction is unknown.
    """
    reference_array = np.asarray(reference, dtype=float)
    if len(directions) != len(reference_array):
        raise ValueError(f"reference must have one value per direction {list(directions)}, got {list(reference)}.")
    for direction in directions:
        if direction not in ("maximize", "minimize"):
            raise ValueError(f"directions must hold 'maximize' or 'minimize', got {direction!r}.")
    signs = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    array = np.asarray(points, dtype=float).reshape(-1, len(directions)) * signs
    bound = reference_array * signs
    array = array[np.all(array < bound, axis=1) & np.all(np.isfinite(array), axis=1)]
    if len(array) == 0:
        return 0.0
    return float(_volume(array[pareto_mask(array)], bound))


def _volume(points: np.ndarray, bound: np.ndarray) -> float:
    """Hypervolume of minimised ``points`` (all strictly better than ``bound``), by slicing."""
    if points.shape[1] == 1:
        return float(bound[0] - points[:, 0].min())
    if points.shape[1] == 2:
        ordered = points[np.argsort(points[:, 0])]
        volume, ceiling = 0.0, bound[1]
        for x, y in ordered:
            if y < ceiling:
                volume += (bound[0] - x) * (ceiling - y)
                ceiling = y
        return volume
    ordered = points[np.argsort(points[:, -1])]
    volume = 0.0
    for i in range(len(ordered)):
        upper = ordered[i + 1, -1] if i + 1 < len(ordered) else bound[-1]
        depth = upper - ordered[i, -1]
        if depth > 0:
            slab = ordered[: i + 1, :-1]
            volume += depth * _volume(slab[pareto_mask(slab)], bound[:-1])
    return volume
