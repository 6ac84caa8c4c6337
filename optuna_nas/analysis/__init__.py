"""Pareto fronts, hypervolume, plots, pictures of architectures, and export."""

from __future__ import annotations

from optuna_nas.analysis._drawing import draw_architecture
from optuna_nas.analysis._export import EXPORT_FORMATS
from optuna_nas.analysis._export import export
from optuna_nas.analysis._export import find_trial
from optuna_nas.analysis._hypervolume import hypervolume_of_points
from optuna_nas.analysis._hypervolume import pareto_mask
from optuna_nas.analysis._pareto import default_reference
from optuna_nas.analysis._pareto import hypervolume
from optuna_nas.analysis._pareto import metric_names
from optuna_nas.analysis._pareto import pareto_front
from optuna_nas.analysis._pareto import plot_pareto

__all__ = [
    "EXPORT_FORMATS",
    "default_reference",
    "draw_architecture",
    "export",
    "find_trial",
    "hypervolume",
    "hypervolume_of_points",
    "metric_names",
    "pareto_front",
    "pareto_mask",
    "plot_pareto",
]
