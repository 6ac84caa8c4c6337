"""Pareto fronts and hypervolume of NAS studies."""

from __future__ import annotations

from optuna_nas.analysis._hypervolume import hypervolume_of_points
from optuna_nas.analysis._hypervolume import pareto_mask

__all__ = ["hypervolume_of_points", "pareto_mask"]
