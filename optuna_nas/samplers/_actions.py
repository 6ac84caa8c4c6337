"""Distributions as finite action sets: categorical and int choices are actions, floats are binned."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution


class ActionSpace:
    """The actions of one distribution.

    Categorical: one action per choice. Int: one per value when there are at most ``bins`` values,
    else ``bins`` equal-width (log-width for log ints) bins. Float: ``bins`` bins; a value is drawn
    uniformly inside the chosen bin (log-uniformly for log floats) and snapped to ``step``.
    """

    def __init__(self, distribution: BaseDistribution, bins: int) -> None:
        self.distribution = distribution
        if isinstance(distribution, CategoricalDistribution):
            self.size = len(distribution.choices)
            self.exact = True
        elif isinstance(distribution, IntDistribution):
            count = (distribution.high - distribution.low) // distribution.step + 1
            self.exact = count <= bins
            self.size = count if self.exact else bins
        elif isinstance(distribution, FloatDistribution):
            self.exact = distribution.low == distribution.high
            self.size = 1 if self.exact else bins
        else:
            raise ValueError(f"distribution: {distribution!r} is not supported.")

    def _edges(self) -> tuple[float, float, bool]:
        d = self.distribution
        log = bool(getattr(d, "log", False))
        low, high = float(d.low), float(d.high)
        return (math.log(low), math.log(high), True) if log else (low, high, False)

    def action_of(self, value: Any) -> int:
        """The action a recorded value belongs to."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return int(d.to_internal_repr(value))
        if self.exact and isinstance(d, IntDistribution):
            return int((int(value) - d.low) // d.step)
        if self.size == 1:
            return 0
        low, high, log = self._edges()
        x = math.log(value) if log else float(value)
        return min(self.size - 1, max(0, int((x - low) / (high - low) * self.size)))

    def value_of(self, action: int, rng: np.random.Generator) -> Any:
        """A value of ``action``: the choice itself, or a uniform draw inside the bin."""
        d = self.distribution
        if isinstance(d, CategoricalDistribution):
            return d.choices[action]
        if self.exact and isinstance(d, IntDistribution):
            return int(d.low + action * d.step)
        if isinstance(d, FloatDistribution) and self.size == 1:
            return float(d.low)
        low, high, log = self._edges()
        x = low + (high - low) * (action + rng.random()) / self.size
        x = math.exp(x) if log else x
        if isinstance(d, IntDistribution):
            snapped = d.low + round((x - d.low) / d.step) * d.step
            return int(min(d.high, max(d.low, snapped)))
        if d.step is not None:
            x = d.low + round((x - d.low) / d.step) * d.step
        return float(min(d.high, max(d.low, x)))
