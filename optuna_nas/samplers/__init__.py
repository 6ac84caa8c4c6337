"""The NAS controllers as Optuna samplers, and Optuna's own samplers by name.

``create_sampler(name, seed=...)`` makes any of them by the name the ``optuna-nas`` command and the
benchmarks use: Optuna's ``random``, ``tpe`` and ``nsga2``, and the project's ``metaqnn`` and
``evolution``.
"""

from __future__ import annotations

from optuna_nas.samplers import rewards
from optuna_nas.samplers._evolution import AgingEvolutionSampler
from optuna_nas.samplers._metaqnn import DEFAULT_EPSILON_SCHEDULE
from optuna_nas.samplers._metaqnn import MetaQNNSampler
from optuna_nas.samplers._registry import available_samplers
from optuna_nas.samplers._registry import create_sampler
from optuna_nas.samplers._registry import register_sampler

register_sampler("metaqnn", lambda *, seed, **options: MetaQNNSampler(seed=seed, **options))
register_sampler("evolution", lambda *, seed, **options: AgingEvolutionSampler(seed=seed, **options))

__all__ = [
    "AgingEvolutionSampler",
    "DEFAULT_EPSILON_SCHEDULE",
    "MetaQNNSampler",
    "available_samplers",
    "create_sampler",
    "register_sampler",
    "rewards",
]
