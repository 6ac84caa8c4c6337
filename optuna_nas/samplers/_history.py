"""The study's finished trials as episodes: decisions in the order they were taken, and a reward."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas.samplers.rewards import RewardFunction

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)
PRUNED_POLICIES = ("last_value", "worst", "skip")


@dataclasses.dataclass(frozen=True)
class Episode:
    """One finished trial as a sampler learns from it.

    Attributes:
        number: The trial's number.
        params: Its decisions, in the order they were taken (Optuna keeps that order in every
            storage).
        distributions: The distribution of each decision.
        reward: Higher is better; ``None`` for failed trials and for pruned ones the policy skips.
        values: The objective values (``None`` unless complete).
        state: The trial's final state.
        started: When the trial started (ISO format), which tells apart trials of equal numbers in
            different studies.
    """

    number: int
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    reward: float | None
    values: tuple[float, ...] | None
    state: TrialState
    started: str | None = None


def finished_trials(study: optuna.Study, *, before: int | None = None) -> list[FrozenTrial]:
    """Finished trials (complete, pruned, failed) numbered below ``before``, in number order."""
    trials = study._get_trials(deepcopy=False, states=FINISHED, use_cache=True)
    if before is not None:
        trials = [t for t in trials if t.number < before]
    return sorted(trials, key=lambda t: t.number)


def episodes(
    trials: Sequence[FrozenTrial],
    directions: Sequence[optuna.study.StudyDirection],
    reward_fn: RewardFunction,
    pruned: str,
) -> list[Episode]:
    """Turn finished trials (in number order) into episodes with rewards.

    Complete trials get ``reward_fn(values, directions)``. Pruned trials, by ``pruned``:
    ``last_value`` - the last reported intermediate value, signed by the direction (single
    objective), else as ``worst``; ``worst`` - the lowest reward among the complete trials before it
    (none yet: skipped); ``skip`` - no reward. Failed trials get no reward: they teach nothing, but
    still count as evaluated architectures.
    """
    result = []
    worst = math.inf
    sign = 1.0 if directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
    for trial in trials:
        reward: float | None = None
        values = None
        if trial.state == TrialState.COMPLETE and trial.values is not None:
            values = tuple(trial.values)
            reward = float(reward_fn(values, directions))
            if not math.isfinite(reward):
                reward = None
            else:
                worst = min(worst, reward)
        elif trial.state == TrialState.PRUNED and pruned != "skip":
            if pruned == "last_value" and len(directions) == 1 and trial.intermediate_values:
                last = trial.intermediate_values[max(trial.intermediate_values)]
                reward = sign * float(last) if math.isfinite(last) else None
            elif math.isfinite(worst):
                reward = worst
        started = trial.datetime_start.isoformat() if trial.datetime_start else None
        result.append(Episode(trial.number, dict(trial.params), dict(trial.distributions), reward, values,
                              trial.state, started))
    return result
