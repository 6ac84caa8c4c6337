"""Aging evolution / regularized evolution (Real et al., AAAI 2019)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from optuna_nas.samplers import rewards
from optuna_nas.samplers._actions import ActionSpace
from optuna_nas.samplers._base import NASSampler
from optuna_nas.samplers._history import Episode
from optuna_nas._validation import check_int

SELECTIONS = ("reward", "pareto")


_UNSET = object()


@dataclasses.dataclass(frozen=True)
class _Plan:
    """What a trial does: copy ``parent`` (a trial number) and set decision ``mutation`` to ``value``.

    ``value`` is ``_UNSET`` when it is left to be drawn (any value but the parent's).
    """

    parent: int | None = None
    mutation: str | None = None
    value: Any = _UNSET


class AgingEvolutionSampler(NASSampler):
    """Aging evolution: tournament selection, one mutation, and the oldest member dies.

    Paper: https://arxiv.org/abs/1802.01548

    The population is the last ``population_size`` finished trials with a reward, by trial number
    (so the oldest leaves as each new one finishes). While fewer exist, trials are random. A trial
    draws ``sample_size`` members with replacement; the best of them (by reward, or with
    ``selection="pareto"`` one drawn uniformly from the non-dominated ones by the study's objective
    values) is the parent. The child inherits every decision of the parent but one, drawn uniformly
    from the parent's decisions that have a choice, which takes another value. Decisions the parent
    lacks (a conditional space took another branch) are drawn at random.

    The parent and the mutated decision are recorded in the trial's system attrs
    (``AgingEvolutionSampler:parent``, ``AgingEvolutionSampler:mutation``).

    Args:
        population_size: P, the number of live members (the paper: 100).
        sample_size: S, the tournament size (the paper: 25). The defaults, P = 20 and S = 10, suit
            budgets of 100 to 300 trials; they were chosen on the 12-epoch validation signal of
            NAS-Bench-201's CIFAR-100 and ImageNet16-120 columns, never on a test column.
        selection: ``reward`` or ``pareto`` (multi-objective studies).
        seed, reward, pruned, float_bins, avoid_duplicates: As in the shared sampler base.

    Example:
        >>> import optuna
        >>> from optuna_nas import samplers, spaces
        >>> space = spaces.NASBench201Space()
        >>> sampler = samplers.AgingEvolutionSampler(population_size=4, sample_size=2, seed=0)
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
        >>> study.optimize(lambda t: float(len(set(space.suggest(t).ops))), n_trials=8)
    """

    def __init__(
        self,
        *,
        population_size: int = 20,
        sample_size: int = 10,
        selection: str = "reward",
        seed: int | None = None,
        reward: rewards.RewardFunction | None = None,
        pruned: str = "last_value",
        float_bins: int = 10,
        avoid_duplicates: bool = True,
    ) -> None:
        super().__init__(seed=seed, reward=reward, pruned=pruned, float_bins=float_bins,
                         avoid_duplicates=avoid_duplicates)
        self._population_size = check_int("population_size", population_size, minimum=1)
        self._sample_size = check_int("sample_size", sample_size, minimum=1)
        if selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {list(SELECTIONS)}, got {selection!r}.")
        self._selection = selection
        self._plans: dict[tuple[Any, ...], tuple[_Plan, Episode | None]] = {}

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()
        state["_plans"] = {}
        return state

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        plan, _ = self._plan(study, trial)
        if plan.parent is not None:
            prefix = type(self).__name__
            study._storage.set_trial_system_attr(trial._trial_id, f"{prefix}:parent", plan.parent)
            study._storage.set_trial_system_attr(trial._trial_id, f"{prefix}:mutation", plan.mutation)

    def after_trial(self, study, trial, state, values) -> None:  # noqa: ANN001
        with self._lock:
            self._plans.pop(_plan_key(study, trial), None)

    def population(self, study: optuna.Study, *, before: int | None = None) -> list[Episode]:
        """The live members: the last ``population_size`` finished trials with a reward."""
        history = [e for e in self._episodes(study, before=before) if e.reward is not None]
        return history[-self._population_size :]

    def _plan(self, study: optuna.Study, trial: FrozenTrial) -> tuple[_Plan, Episode | None]:
        key = _plan_key(study, trial)
        with self._lock:
            if key in self._plans:
                return self._plans[key]
        population = self.population(study, before=trial.number)
        plan, parent = _Plan(), None
        if len(population) >= self._population_size:
            rng = self._rng(trial.number, "tournament")
            contenders = [population[i] for i in rng.integers(0, len(population), size=self._sample_size)]
            parent = self._select(study, contenders, rng)
            plan = self._mutate(study, parent, rng)
        with self._lock:
            self._plans[key] = (plan, parent)
        return plan, parent

    def _mutate(self, study: optuna.Study, parent: Episode, rng: np.random.Generator) -> _Plan:
        """Pick the decision to change and its new value: decisions in random order, values in
        random order, the first child not already evaluated wins (the decisions after a changed
        one that the parent lacks are drawn later, so such a child counts as new)."""
        trie = self._evaluated(study) if self._avoid_duplicates else None
        mutable = [
            name for name, distribution in parent.distributions.items()
            if ActionSpace(distribution, self._float_bins).size > 1
        ]
        for index in rng.permutation(len(mutable)):
            name = mutable[int(index)]
            actions = ActionSpace(parent.distributions[name], self._float_bins)
            current = actions.action_of(parent.params[name])
            for action in rng.permutation(actions.size):
                if int(action) == current:
                    continue
                value = actions.value_of(int(action), rng)
                if trie is None or not actions.exact or not trie.contains({**parent.params, name: value}):
                    return _Plan(parent=parent.number, mutation=name, value=value)
        # Every one-step neighbour was evaluated: mutate anyway and let the draw decide.
        name = mutable[int(rng.integers(len(mutable)))] if mutable else None
        return _Plan(parent=parent.number, mutation=name)

    def _select(self, study: optuna.Study, contenders: list[Episode], rng: np.random.Generator) -> Episode:
        if self._selection == "reward" or any(c.values is None for c in contenders):
            return max(contenders, key=lambda c: c.reward)  # first drawn wins ties
        signs = np.array([1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in study.directions])
        losses = np.array([np.asarray(c.values) * signs for c in contenders])
        front = [
            i for i in range(len(contenders))
            if not any(np.all(losses[j] <= losses[i]) and np.any(losses[j] < losses[i]) for j in range(len(contenders)))
        ]
        return contenders[int(rng.choice(front))]

    def _propose(self, study, trial, name, actions, allowed, rng):  # noqa: ANN001, ANN201
        plan, parent = self._plan(study, trial)
        if parent is None or name not in parent.params or not _within(actions, parent.params[name]):
            return actions.value_of(int(rng.choice(allowed)), rng)
        inherited = parent.params[name]
        inherited_action = actions.action_of(inherited)
        if name == plan.mutation:
            if plan.value is not _UNSET and _within(actions, plan.value) and (
                not actions.exact or actions.action_of(plan.value) in allowed
            ):
                return plan.value
            others = [a for a in allowed if a != inherited_action] or allowed
            return actions.value_of(int(rng.choice(others)), rng)
        if inherited_action in allowed:
            return inherited
        return actions.value_of(int(rng.choice(allowed)), rng)


def _within(actions: ActionSpace, value: Any) -> bool:
    """Whether ``value`` is a value of the (current) distribution."""
    distribution = actions.distribution
    try:
        return bool(distribution._contains(distribution.to_internal_repr(value)))
    except (ValueError, TypeError):
        return False


def _plan_key(study: optuna.Study, trial: FrozenTrial) -> tuple[Any, ...]:
    return (id(study._storage), study._study_id, trial._trial_id, trial.datetime_start)
