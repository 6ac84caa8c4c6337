"""Distributions as finite action sets: choices are actions, wide ranges are cut into bins."""

from __future__ import annotations

import bisect
import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


class ActionSpace:
    """The actions of one distribution.

    * Categorical: one action per choice.
    * Int, and float with a ``step``: the values form a grid. At most ``bins`` grid values: one
      action each. More: ``bins`` contiguous groups of grid values, cut at equal widths (equal
      log-widths for log ints); a group that would hold no grid value is dropped. A value is drawn
      uniformly among its group's grid values, so it always lies in the action that was chosen.
    * Float without a step: ``bins`` equal-width (log-width for log floats) intervals; a value is
      drawn uniformly (log-uniformly) inside the chosen one.

    Attributes:
        distribution: The distribution.
        size: The number of actions.
        exact: Whether each action is exactly one value (so equal actions mean equal values).
    """

    def __init__(self, distribution: BaseDistribution, bins: int) -> None:
        self.distribution = distribution
        self._groups: list[int] = []  # first grid index of each group (grid distributions)
        self._count = 0  # grid values (grid distributions)
        if isinstance(distribution, CategoricalDistribution):
            self.size = len(distribution.choices)
            self.exact = True
            return
        if isinstance(distribution, (IntDistribution, FloatDistribution)) and distribution.step is not None:
            # An int distribution always has a step.
            self._count = round((distribution.high - distribution.low) / distribution.step) + 1
            self.exact = self._count <= bins
            self._groups = list(range(self._count)) if self.exact else self._cut_grid(bins)
            self.size = len(self._groups)
        elif isinstance(distribution, FloatDistribution):
            self.exact = distribution.low == distribution.high
            self.size = 1 if self.exact else bins
        else:
            raise ValueError(f"distribution: {distribution!r} is not supported.")

    @property
    def _numeric(self) -> IntDistribution | FloatDistribution:
        """The distribution of a grid or continuous action space (never asked of a categorical one)."""
        d = self.distribution
        if not isinstance(d, (IntDistribution, FloatDistribution)):
            raise TypeError(f"distribution: {d!r} is not an int or float distribution.")
        return d

    @property
    def _step(self) -> float:
        """The step of a grid distribution (an int for int distributions)."""
        step = self._numeric.step
        if step is None:
            raise TypeError(f"distribution: {self.distribution!r} has no step.")
        return step

    # -- The grid (ints, stepped floats) ----------------------------------------------------------

    def _grid_value(self, index: int) -> Any:
        d = self._numeric
        if isinstance(d, IntDistribution):
            return int(d.low + index * d.step)
        # 15 significant digits: 0.1 * 3 is 0.3, as a user (or another sampler) would write it.
        return float(f"{min(d.high, d.low + index * self._step):.15g}")

    def _cut_grid(self, bins: int) -> list[int]:
        """First grid index of each non-empty group of equal (log-)width."""
        d = self._numeric
        log = bool(getattr(d, "log", False))
        low, high = (math.log(d.low), math.log(d.high)) if log else (float(d.low), float(d.high))
        starts = {0}
        for cut in range(1, bins):
            edge = low + (high - low) * cut / bins
            edge_value = math.exp(edge) if log else edge
            # The first grid value at or above the edge starts a group.
            index = math.ceil((edge_value - d.low) / self._step - 1e-9)
            if 0 < index < self._count:
                starts.add(index)
        return sorted(starts)

    def _group_range(self, action: int) -> tuple[int, int]:
        end = self._groups[action + 1] if action + 1 < len(self._groups) else self._count
        return self._groups[action], end

    # -- Continuous floats --------------------------------------------------------------------------

    def _edges(self) -> tuple[float, float, bool]:
        d = self._numeric
        log = bool(getattr(d, "log", False))
        low, high = float(d.low), float(d.high)
        return (math.log(low), math.log(high), True) if log else (low, high, False)

    # -- Public ---------------------------------------------------------------------------------------

    def action_of(self, value: Any) -> int:
        """The action a value belongs to."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return int(d.to_internal_repr(value))
        if self._groups:
            index = round((float(value) - self._numeric.low) / self._step)
            index = min(self._count - 1, max(0, index))
            return bisect.bisect_right(self._groups, index) - 1
        if self.size == 1:
            return 0
        low, high, log = self._edges()
        x = math.log(value) if log else float(value)
        return min(self.size - 1, max(0, int((x - low) / (high - low) * self.size)))

    def value_of(self, action: int, rng: np.random.Generator) -> Any:
        """A value of ``action``: the choice itself, or a uniform draw inside the action."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return d.choices[action]
        if self._groups:
            start, end = self._group_range(action)
            index = start if end - start == 1 else int(rng.integers(start, end))
            return self._grid_value(index)
        if self.size == 1:
            return float(self._numeric.low)
        low, high, log = self._edges()
        x = low + (high - low) * (action + rng.random()) / self.size
        x = math.exp(x) if log else x
        return float(min(self._numeric.high, max(self._numeric.low, x)))

    def contains(self, value: Any) -> bool:
        """Whether ``value`` is a value of the distribution (so it may be returned for it)."""
        distribution = self.distribution
        try:
            return bool(distribution._contains(distribution.to_internal_repr(value)))
        except (ValueError, TypeError):
            return False

    def values(self) -> list[Any]:
        """The value of each action, for exact action spaces.

        Raises:
            ValueError: The actions are not exact.
        """
        if not self.exact:
            raise ValueError(f"distribution: {self.distribution!r} has no single value per action.")
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return list(d.choices)
        if self._groups:
            return [self._grid_value(i) for i in range(self._count)]
        return [float(self._numeric.low)]
