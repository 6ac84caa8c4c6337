"""What an architecture costs: parameters, MACs and FLOPs (thop), and latency."""

from __future__ import annotations

from optuna_nas.metrics._counts import ComputeCost
from optuna_nas.metrics._counts import count_cost
from optuna_nas.metrics._counts import count_params
from optuna_nas.metrics._latency import measure_latency

__all__ = ["ComputeCost", "count_cost", "count_params", "measure_latency"]
