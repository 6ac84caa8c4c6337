"""Finished trials as episodes: decisions in the order they were taken, and a reward.

A trial's own record (params, values, state, constraints) never changes once it finished, so it is
converted once (:func:`to_episode`). What depends on the trials before it - the reward of a pruned
trial rewarded as the worst so far, and of a trial that violates its constraints - is settled while
the episodes are replayed in trial-number order (:class:`RewardLedger`), so it is the same function of
the history in every process, whatever order the trials finished in.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas._decided import DUPLICATE_KEY
from optuna_nas._decided import is_decided
from optuna_nas.samplers.rewards import RelativeReward
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
        reward: Higher is better. ``None`` when there is nothing to learn: a failed trial, a pruned
            one the policy skips, or a pruned one with no reward to compare with yet.
        values: The objective values (``None`` unless complete).
        state: The trial's final state.
        violation: How far the trial is from feasible: the sum of its positive constraint values
            (``trial.set_constraint``); 0 when feasible or unconstrained.
        whole: Whether every architecture decision was taken: complete trials, trials marked decided
            (:func:`optuna_nas.samplers.mark_decided`), and trials that reported an intermediate value
            (objectives decide before they train). A pruned or failed trial that is not whole was cut
            short, and its decisions are only a prefix of an architecture.
        duplicate_of: The trial this one yielded its architecture to, when two workers started the
            same one together (:func:`optuna_nas.samplers.mark_decided`): it was not trained and
            teaches nothing.
    """

    number: int
    params: dict[str, Any]
    distributions: dict[str, BaseDistribution]
    reward: float | None
    values: tuple[float, ...] | None
    state: TrialState
    violation: float = 0.0
    whole: bool = True
    duplicate_of: int | None = None

    @property
    def feasible(self) -> bool:
        """Whether every constraint of the trial holds."""
        return self.violation <= 0.0


def is_whole(trial: FrozenTrial) -> bool:
    """Whether every architecture decision of ``trial`` was taken (see :attr:`Episode.whole`).

    A trial that yielded its architecture to another (``optuna_nas:duplicate_of``) is not: it was
    not evaluated, and the other trial holds the architecture.
    """
    if DUPLICATE_KEY in trial.system_attrs:
        return False
    return trial.state == TrialState.COMPLETE or is_decided(trial.system_attrs) or bool(trial.intermediate_values)


def violation_of(trial: FrozenTrial) -> float:
    """The sum of the positive constraint values of ``trial`` (0 when it is feasible)."""
    total = 0.0
    for value in trial.constraints.values():
        value = float(value)
        total += value if value > 0 else 0.0
    return total


def to_episode(
    trial: FrozenTrial,
    directions: Sequence[optuna.study.StudyDirection],
    reward_fn: RewardFunction,
    pruned: str,
) -> Episode:
    """Convert one finished trial; rewards that depend on earlier trials stay unsettled.

    Complete trials get ``reward_fn(values, directions)`` (``None`` if not finite). A pruned trial
    under ``last_value`` with one objective gets its last reported value, signed by the direction;
    other pruned trials (except under ``skip``) get their reward from :class:`RewardLedger`.
    """
    reward: float | None = None
    values = None
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        values = tuple(float(v) for v in trial.values)
        reward = float(reward_fn(values, directions))
        reward = reward if math.isfinite(reward) else None
    elif trial.state == TrialState.PRUNED and pruned == "last_value" and len(directions) == 1:
        if trial.intermediate_values:
            last = float(trial.intermediate_values[max(trial.intermediate_values)])
            sign = 1.0 if directions[0] == optuna.study.StudyDirection.MAXIMIZE else -1.0
            reward = sign * last if math.isfinite(last) else None
    return Episode(
        number=trial.number,
        params=dict(trial.params),
        distributions=dict(trial.distributions),
        reward=reward,
        values=values,
        state=trial.state,
        violation=violation_of(trial),
        whole=is_whole(trial),
        duplicate_of=trial.system_attrs.get(DUPLICATE_KEY),
    )


@dataclasses.dataclass
class RewardLedger:
    """Settles the rewards that depend on earlier trials, replayed in trial-number order.

    * A pruned trial without a reward of its own (``worst``, or ``last_value`` with nothing
      reported or several objectives) gets the lowest reward of the feasible complete trials before
      it; with none yet, no reward.
    * A trial that violates its constraints gets a reward below every feasible reward so far: the
      lower of its own and the lowest so far, minus the spread of the rewards so far (at least 1 %
      of the lowest's magnitude); with none so far, its own minus ``max(1, |own|)``.
    * Failed trials, pruned ones under ``skip``, and trials that yielded their architecture to
      another worker's get none.
    * With a :class:`~optuna_nas.samplers.rewards.RelativeReward` (``relative``), a complete
      trial's reward is taken against the values of the feasible complete trials before it.

    Attributes:
        pruned: The pruned-trial policy.
        relative: The reward that depends on earlier trials, if the sampler's reward is one.
        directions: The study's directions (needed with ``relative``).
        lowest: The lowest reward of the feasible complete trials settled so far.
        highest: The highest such reward.
    """

    pruned: str
    lowest: float = math.inf
    highest: float = -math.inf
    relative: RelativeReward | None = dataclasses.field(default=None, kw_only=True)
    directions: Sequence[optuna.study.StudyDirection] = dataclasses.field(default=(), kw_only=True)
    _earlier: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False, kw_only=True)
    _n_earlier: int = dataclasses.field(default=0, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        if self.pruned not in PRUNED_POLICIES:
            raise ValueError(f"pruned must be one of {list(PRUNED_POLICIES)}, got {self.pruned!r}.")
        if self.relative is not None and not self.directions:
            raise ValueError(f"directions: a relative reward needs the study's directions, got {self.directions!r}.")

    def settle(self, episode: Episode) -> Episode:
        """The episode with its final reward; updates the ledger."""
        reward = episode.reward
        counts = episode.state != TrialState.FAIL and episode.duplicate_of is None
        if self.relative is not None and counts and reward is not None and episode.values is not None:
            earlier = self._earlier[: self._n_earlier] if self._earlier is not None else np.empty((0, 0))
            reward = float(self.relative.relative_to(episode.values, self.directions, earlier))
            reward = reward if math.isfinite(reward) else None
            finite = all(math.isfinite(v) for v in episode.values)
            if reward is not None and finite and episode.feasible and episode.state == TrialState.COMPLETE:
                self._remember(episode.values)
        if not counts:
            reward = None
        elif episode.state == TrialState.PRUNED:
            if self.pruned == "skip":
                reward = None
            elif reward is None or self.pruned == "worst":
                reward = self.lowest if math.isfinite(self.lowest) else None
        if reward is not None and not episode.feasible:
            if math.isfinite(self.lowest):
                margin = max(self.highest - self.lowest, 0.01 * abs(self.lowest), 1e-9)
                reward = min(reward, self.lowest) - margin
            else:
                reward = reward - max(1.0, abs(reward))
        elif reward is not None and episode.state == TrialState.COMPLETE:
            self.lowest = min(self.lowest, reward)
            self.highest = max(self.highest, reward)
        if reward == episode.reward:
            return episode
        return dataclasses.replace(episode, reward=reward)

    def _remember(self, values: tuple[float, ...]) -> None:
        if self._earlier is None or self._n_earlier == len(self._earlier):
            grown = np.empty((max(16, 2 * self._n_earlier), len(values)))
            if self._earlier is not None:
                grown[: self._n_earlier] = self._earlier[: self._n_earlier]
            self._earlier = grown
        self._earlier[self._n_earlier] = values
        self._n_earlier += 1

    def copy(self) -> RewardLedger:
        """An independent copy: settling on it leaves this ledger as it is."""
        earlier = None if self._earlier is None else self._earlier.copy()
        return dataclasses.replace(self, _earlier=earlier)


def episodes(
    trials: Sequence[FrozenTrial],
    directions: Sequence[optuna.study.StudyDirection],
    reward_fn: RewardFunction,
    pruned: str,
) -> list[Episode]:
    """Turn finished trials (in number order) into episodes with settled rewards, from scratch."""
    relative = reward_fn if isinstance(reward_fn, RelativeReward) else None
    ledger = RewardLedger(pruned, relative=relative, directions=directions)
    return [ledger.settle(to_episode(t, directions, reward_fn, pruned)) for t in trials]
