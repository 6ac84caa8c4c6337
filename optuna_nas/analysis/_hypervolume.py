"""Non-dominated masks and exact hypervolume, delegated to moocore (a maintained C implementation
of the multi-objective indicators: https://multi-objective.github.io/moocore/python/).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pareto_mask(points: Sequence[Sequence[float]] | np.ndarray) -> np.ndarray:
    """Which rows of ``points`` (all objectives minimised) no other row dominates.

    Identical rows are all kept (none dominates another).
    """
    import moocore

    array = np.asarray(points, dtype=float)
    if array.size == 0:
        return np.zeros(len(array), dtype=bool)
    array = array.reshape(len(array), -1)
    if array.shape[1] == 1:
        return np.asarray(array[:, 0] == array[:, 0].min(), dtype=bool)
    return np.asarray(moocore.is_nondominated(array, keep_weakly=True), dtype=bool)


def hypervolume_of_points(
    points: Sequence[Sequence[float]], reference: Sequence[float], directions: Sequence[str]
) -> float:
    """Volume dominated by ``points`` and bounded by ``reference``.

    Args:
        points: One row per solution, one column per objective.
        reference: The bound of the volume: a point every solution should improve on, e.g.
            ``(0.0, max_flops)`` for ``("maximize", "minimize")``. Points that do not improve on it
            in every objective, or are not finite, add nothing.
        directions: ``"maximize"`` or ``"minimize"`` per objective.

    Raises:
        ValueError: The lengths disagree or a direction is unknown.
    """
    import moocore

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
    if array.shape[1] == 1:
        return float(bound[0] - array[:, 0].min())
    return float(moocore.hypervolume(array, ref=bound))
