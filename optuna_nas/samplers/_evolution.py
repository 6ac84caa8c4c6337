"""Aging evolution / regularized evolution (Real et al., AAAI 2019)."""

from __future__ import annotations

import math

import numpy as np
import optuna
from optuna.trial import FrozenTrial

from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas.samplers import rewards
from optuna_nas.samplers._base import Decision
from optuna_nas.samplers._base import NASSampler
from optuna_nas.samplers._base import Plan
from optuna_nas.samplers._dedup import DedupKey
from optuna_nas.samplers._history import Episode
from optuna_nas.samplers._registry import register_sampler

SELECTIONS = ("reward", "pareto")


#: The largest population (and tournament) accepted: larger ones exhaust memory long before they help.
MAX_POPULATION = 100_000


class AgingEvolutionSampler(NASSampler):
    """Aging evolution: tournament selection, one mutation, and the oldest member dies.

    Paper: https://arxiv.org/abs/1802.01548

    The population is the last ``population_size`` finished trials with a reward, by trial number
    (so the oldest leaves as each new one finishes). While fewer exist, trials are random. A trial
    draws ``sample_size`` members with replacement; the best of them is the parent: by reward, or
    with ``selection="pareto"`` (the default when the study has several objectives and no reward is
    given) the one best in the first objective (accuracy, in this package's objectives) with
    probability ``primary_share``, else, among the members no other drawn member dominates by the
    study's objective values, the one that adds the most hypervolume to the others (objectives
    scaled to the range of the feasible drawn members; SMS-EMOA's criterion, Beume et al. 2007; each
    member counts once however often it was drawn, and members without finite values, such as pruned
    ones, take no part). So the most accurate networks get children, and so do the parts of the
    front with the widest gaps, often its cheap end. A feasible member always beats one that
    violates its constraints. The child is planned before its first decision: it inherits every
    decision of the parent but one, which takes another value; decisions and values are tried in
    random order and the first child that was neither evaluated nor is pending in another worker
    wins. Decisions the parent lacks (a conditional space took another branch) are drawn at random.

    The parent and the mutated decision are recorded in the trial's system attrs
    (``AgingEvolutionSampler:parent``, ``AgingEvolutionSampler:mutation``), except for enqueued
    trials. With several workers, another worker may start the planned child between the plan and
    a decision; that decision then takes another allowed value and is listed in
    ``AgingEvolutionSampler:unplanned``, so the child is new rather than a duplicate.

    Args:
        population_size: P, the number of live members (the paper: 100).
        sample_size: S, the tournament size (the paper: 25). The defaults, P = 20 and S = 10, suit
            budgets of 100 to 300 trials; they were chosen on the 12-epoch validation signal of
            NAS-Bench-201's CIFAR-100 and ImageNet16-120 columns, never on a test column.
        selection: ``reward`` or ``pareto`` (several objectives). Default: ``pareto`` when the study
            has several objectives and no ``reward`` is given, else ``reward``.
        primary_share: With ``pareto`` selection, the share of tournaments the contender best in
            the first objective wins. 0.5 and the hypervolume criterion were chosen on the
            NAS-Bench-201 validation signal (CIFAR-10, CIFAR-100 and ImageNet16-120, seeds 100-139),
            where they gave a larger hypervolume and more accurate best cells than uniform Pareto
            selection; never on a test column.
        seed, reward, pruned, float_bins, avoid_duplicates, dedup_key: As in
            :class:`~optuna_nas.samplers.NASSampler`.

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
        selection: str | None = None,
        primary_share: float = 0.5,
        seed: int | None = None,
        reward: rewards.RewardFunction | None = None,
        pruned: str = "last_value",
        float_bins: int = 10,
        avoid_duplicates: bool = True,
        dedup_key: DedupKey | None = None,
    ) -> None:
        super().__init__(
            seed=seed,
            reward=reward,
            pruned=pruned,
            float_bins=float_bins,
            avoid_duplicates=avoid_duplicates,
            dedup_key=dedup_key,
        )
        self._population_size = check_int("population_size", population_size, minimum=1)
        self._sample_size = check_int("sample_size", sample_size, minimum=1)
        for name, value in (("population_size", population_size), ("sample_size", sample_size)):
            if value > MAX_POPULATION:
                raise ValueError(f"{name} must be at most {MAX_POPULATION}, got {value!r}.")
        if selection is not None and selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {list(SELECTIONS)}, got {selection!r}.")
        self._selection = selection
        self._primary_share = check_number("primary_share", primary_share, low=0.0, high=1.0)

    def selection(self, study: optuna.Study) -> str:
        """How parents are selected in ``study``: the ``selection`` argument, else ``pareto`` when
        the study has several objectives and no reward was given, and ``reward`` otherwise.
        """
        if self._selection is not None:
            return self._selection
        return "pareto" if len(study.directions) > 1 and self._reward is None else "reward"

    def population(self, study: optuna.Study, *, before: int | None = None) -> list[Episode]:
        """The live members (the last ``population_size`` finished trials with a reward), read from
        storage now.
        """
        return list(self.learned_state(study, before=before))

    # -- Learning: the population is the last P rewarded episodes -------------------------------

    def initial_state(self) -> list[Episode]:
        return []

    def copy_state(self, state: list[Episode]) -> list[Episode]:
        return list(state)

    def learn(self, state: list[Episode], episode: Episode) -> list[Episode]:
        if episode.reward is not None:
            state.append(episode)
            if len(state) > self._population_size:
                del state[0]
        return state

    # -- Deciding -------------------------------------------------------------------------------

    def plan(self, study: optuna.Study, trial: FrozenTrial, state: list[Episode], n_finished: int) -> Plan | None:
        if len(state) < self._population_size:
            return None
        rng = self.rng(trial.number, "tournament")
        contenders = [state[i] for i in rng.integers(0, len(state), size=self._sample_size)]
        parent = self._select(study, contenders, rng)
        return self._mutate(study, parent, rng)

    def _mutate(self, study: optuna.Study, parent: Episode, rng: np.random.Generator) -> Plan:
        """Pick the decision to change and its new value: decisions in random order, values in
        random order, the first child not evaluated (nor pending) wins. The decisions after a changed
        one that the parent lacks are drawn later, so such a child counts as new.
        """
        attrs = {"parent": parent.number}
        mutable = [name for name, d in parent.distributions.items() if self.actions(d).size > 1]
        for index in rng.permutation(len(mutable)):
            name = mutable[int(index)]
            actions = self.actions(parent.distributions[name])
            current = actions.action_of(parent.params[name])
            for action in rng.permutation(actions.size):
                if int(action) == current:
                    continue
                child = {**parent.params, name: actions.value_of(int(action), rng)}
                if not self.avoid_duplicates or not actions.exact or not self.is_evaluated(study, child):
                    return Plan(params=child, attrs={**attrs, "mutation": name})
        # Every one-step neighbour was evaluated: mutate anyway and let the draw decide.
        if not mutable:
            return Plan(params=dict(parent.params), attrs={**attrs, "mutation": None})
        name = mutable[int(rng.integers(len(mutable)))]
        inherited = {key: value for key, value in parent.params.items() if key != name}
        return Plan(params=inherited, attrs={**attrs, "mutation": name})

    def _select(self, study: optuna.Study, contenders: list[Episode], rng: np.random.Generator) -> Episode:
        feasible = [c for c in contenders if c.feasible]
        if not feasible:
            return min(contenders, key=lambda c: c.violation)  # first drawn wins ties
        by_reward = max(feasible, key=lambda c: -math.inf if c.reward is None else c.reward)
        if self.selection(study) == "reward":
            return by_reward
        # Pareto selection looks at each drawn member once (the draw is with replacement, and a
        # copy would halve a member's hypervolume contribution), among those with finite values (a
        # pruned member has none; an infinite cost has no place on a front).
        distinct: dict[tuple[float, ...], Episode] = {}
        for contender in feasible:
            values = contender.values
            if values is not None and all(math.isfinite(v) for v in values):
                distinct.setdefault(tuple(values), contender)
        members = list(distinct.values())
        if not members:
            return by_reward
        signs = np.array([1.0 if d == optuna.study.StudyDirection.MINIMIZE else -1.0 for d in study.directions])
        losses = np.array([np.asarray(m.values) * signs for m in members])
        front = [
            i
            for i in range(len(members))
            if not any(np.all(losses[j] <= losses[i]) and np.any(losses[j] < losses[i]) for j in range(len(members)))
        ]
        primary = rng.random() < self._primary_share
        if primary or len(front) == 1 or losses.shape[1] == 1:
            # The best in the first objective; ties go to the one no other front member dominates.
            return members[min(front, key=lambda i: tuple(losses[i]))]
        contributions = _hypervolume_contributions(losses, front)
        best = np.flatnonzero(contributions >= contributions.max())
        return members[front[int(rng.choice(best))]]

    def propose(self, decision: Decision) -> int:
        plan = decision.plan
        if plan is None or decision.name != plan.attrs.get("mutation"):
            return decision.random_action()
        # The mutated decision, whose planned value is taken: any other value than the parent's.
        parent = next((e for e in decision.state if e.number == plan.attrs["parent"]), None)
        inherited = parent.params.get(decision.name) if parent is not None else None
        if inherited is None or not decision.actions.contains(inherited):
            return decision.random_action()
        others = [a for a in decision.allowed if a != decision.actions.action_of(inherited)]
        return decision.random_action(others or None)


def _hypervolume_contributions(losses: np.ndarray, front: list[int]) -> np.ndarray:
    """The hypervolume each member of ``front`` (mutually non-dominated rows of ``losses``, all
    minimised) alone adds, with every objective scaled to [0, 1] over all of ``losses`` and the
    reference point at 1.1: the parts of the front with the widest gaps add the most (SMS-EMOA's
    criterion).
    """
    import moocore

    low, high = losses.min(axis=0), losses.max(axis=0)
    scaled = (losses[front] - low) / np.where(high > low, high - low, 1.0)
    reference = np.full(losses.shape[1], 1.1)
    return np.asarray(moocore.hv_contributions(scaled, ref=reference, ignore_dominated=False), dtype=float)


register_sampler("evolution", lambda *, seed, **options: AgingEvolutionSampler(seed=seed, **options))
