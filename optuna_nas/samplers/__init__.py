"""The NAS controllers as Optuna samplers, the base to write more, and Optuna's samplers by name.

``create_sampler(name, seed=...)`` makes any of them by the name the ``optuna-nas`` command and the
benchmarks use: Optuna's ``random``, ``tpe`` and ``nsga2``, and the project's ``metaqnn``,
``evolution``, ``evolution-guided`` (aging evolution guided by an accuracy predictor), ``pnas``
(progressive cells; both need ``space=``), ``reinforce`` and ``enas``. :class:`NASSampler` is the
public base of the project's samplers: subclass it (with :class:`Decision`, :class:`Plan`,
:class:`Episode`, :class:`ActionSpace`) to write a controller; :class:`PredictorGuidedSampler` puts
a predictor in front of any of them.
"""

from __future__ import annotations

from optuna_nas._decided import mark_decided
from optuna_nas.samplers import controllers
from optuna_nas.samplers import rewards
from optuna_nas.samplers._actions import ActionSpace
from optuna_nas.samplers._base import Decision
from optuna_nas.samplers._base import NASSampler
from optuna_nas.samplers._base import Plan
from optuna_nas.samplers._evolution import AgingEvolutionSampler
from optuna_nas.samplers._guided import PredictorGuidedSampler
from optuna_nas.samplers._history import Episode
from optuna_nas.samplers._history import RewardLedger
from optuna_nas.samplers._metaqnn import DEFAULT_EPSILON_SCHEDULE
from optuna_nas.samplers._metaqnn import PAPER_EPSILON_SCHEDULE
from optuna_nas.samplers._metaqnn import MetaQNNSampler
from optuna_nas.samplers._pnas import PNASSampler
from optuna_nas.samplers._registry import available_samplers
from optuna_nas.samplers._registry import create_sampler
from optuna_nas.samplers._registry import register_sampler
from optuna_nas.samplers._reinforce import ENASSampler
from optuna_nas.samplers._reinforce import ReinforceSampler

__all__ = [
    "DEFAULT_EPSILON_SCHEDULE",
    "PAPER_EPSILON_SCHEDULE",
    "ActionSpace",
    "AgingEvolutionSampler",
    "Decision",
    "ENASSampler",
    "Episode",
    "MetaQNNSampler",
    "NASSampler",
    "PNASSampler",
    "Plan",
    "PredictorGuidedSampler",
    "ReinforceSampler",
    "RewardLedger",
    "available_samplers",
    "controllers",
    "create_sampler",
    "mark_decided",
    "register_sampler",
    "rewards",
]
