"""Predictor-guided search: many candidate architectures, a predictor ranks them, the best is trained.

Predictor-assisted evolution (Wen et al. 2020, "Neural predictor for neural architecture search")
and BANANAS (White et al. 2021) make many candidates with a cheap generator, rank them with an
accuracy predictor trained on the architectures evaluated so far, and train only the best. Here the
generator is any sampler of the package: :class:`PredictorGuidedSampler` runs the wrapped sampler's
own decision procedure (its :meth:`~optuna_nas.samplers.NASSampler.plan`, then its
:meth:`~optuna_nas.samplers.NASSampler.propose` for each remaining decision) ``candidates`` times
with independent random streams, without a trial, and plans the candidate the predictor ranks best.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas.samplers import rewards
from optuna_nas.samplers._base import Decision
from optuna_nas.samplers._base import NASSampler
from optuna_nas.samplers._base import Plan
from optuna_nas.samplers._history import Episode
from optuna_nas.samplers._registry import register_sampler
from optuna_nas.spaces import DistributionDecider
from optuna_nas.spaces import Space

if TYPE_CHECKING:
    from optuna_nas.predictors import FittedPredictor

_logger = optuna.logging.get_logger(__name__)

#: Fitted predictors kept in memory per sampler (one per distinct set of training trials).
_FITS_KEPT = 4


@dataclasses.dataclass
class GuidedState:
    """The learned state of :class:`PredictorGuidedSampler`.

    Attributes:
        base: The wrapped sampler's learned state.
        examples: ``(trial number, params, reward)`` of every complete, feasible trial with a
            reward, in number order: the predictor's training data.
    """

    base: Any
    examples: list[tuple[int, dict[str, Any], float]]


@dataclasses.dataclass(frozen=True)
class GuidedPlan(Plan):
    """The plan of a guided trial: the chosen candidate, and the wrapped sampler's plan and random
    stream that made it (its :meth:`~optuna_nas.samplers.NASSampler.propose` decides what the
    candidate left open).
    """

    base_plan: Plan | None = None
    variant: int = 0


class PredictorGuidedSampler(NASSampler):
    """Any of the package's samplers, guided by an accuracy predictor.

    For each trial, once ``min_trials`` complete trials exist, the wrapped ``sampler`` makes
    ``candidates`` whole architectures of ``space`` (its usual procedure, with as many independent
    random streams; candidates already evaluated or pending in another worker, and repeats, are left
    out). A predictor fitted on the complete trials numbered below the trial (their params as specs
    of ``space``, encoded by :class:`~optuna_nas.predictors.VectorEncoder`, or
    :class:`~optuna_nas.predictors.TokenEncoder` for a sequence predictor; the target is the
    sampler's reward) scores them by mean plus ``exploration`` times spread, and the best is planned.
    Before ``min_trials``, the wrapped sampler decides alone. The predictor's data and fit are a
    function of the finished trials (the fit is cached in memory, never stored), so every worker
    ranks alike.

    The reward, the pruned-trial policy, the binning and the duplicate handling are the wrapped
    sampler's. The trial's system attrs record the candidate's predicted mean and spread
    (``PredictorGuidedSampler:predicted``, ``PredictorGuidedSampler:spread``), how many candidates
    were ranked, and the wrapped sampler's plan attrs (evolution's parent and mutation).

    Args:
        sampler: The sampler that makes candidates (a :class:`~optuna_nas.samplers.NASSampler`).
        space: The space the objective suggests from (candidates are its architectures).
        predictor: An unfitted :class:`~optuna_nas.predictors.Predictor` to copy and fit; default
            :class:`~optuna_nas.predictors.TreeEnsemble` (a random forest of 100 trees) seeded
            from the sampler's seed.
        candidates: Candidates ranked per trial (1 to 10,000).
        exploration: Weight of the predictor's spread in the score (0: the mean alone).
        min_trials: Complete trials needed before the predictor guides (at least 2).

    The defaults (50 candidates, exploration 1, 10 trials) were chosen around aging evolution on
    the 12-epoch validation signal of NAS-Bench-201 (CIFAR-10 and CIFAR-100, seeds 100-139), never
    on a test column: the mean alone (exploration 0) ranked worse than plain evolution there, as
    the search kept to the neighbours of its first good cells.

    Raises:
        ValueError: An argument is out of range or of the wrong kind; the message names it.

    Example:
        >>> import optuna
        >>> from optuna_nas import samplers, spaces
        >>> space = spaces.NASBench201Space()
        >>> evolution = samplers.AgingEvolutionSampler(population_size=4, sample_size=2, seed=0)
        >>> sampler = samplers.PredictorGuidedSampler(evolution, space=space, candidates=8, min_trials=4)
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
        >>> study.optimize(lambda t: float(space.suggest(t).ops.count("nor_conv_3x3")), n_trials=10)
    """

    def __init__(
        self,
        sampler: NASSampler,
        *,
        space: Space,
        predictor: Any = None,
        candidates: int = 50,
        exploration: float = 1.0,
        min_trials: int = 10,
    ) -> None:
        if not isinstance(sampler, NASSampler):
            raise ValueError(f"sampler must be one of the package's samplers (a NASSampler), got {sampler!r}.")
        if isinstance(sampler, PredictorGuidedSampler):
            raise ValueError("sampler: a PredictorGuidedSampler cannot wrap another one.")
        if not isinstance(space, Space):
            raise ValueError(f"space must be a search space of optuna_nas.spaces, got {space!r}.")
        from optuna_nas.predictors import Predictor

        if predictor is not None and not isinstance(predictor, Predictor):
            raise ValueError(f"predictor must be an optuna_nas.predictors.Predictor, got {predictor!r}.")
        super().__init__(
            seed=sampler.seed,
            reward=sampler._reward,
            pruned=sampler._pruned,
            float_bins=sampler._float_bins,
            avoid_duplicates=sampler.avoid_duplicates,
            dedup_key=sampler._dedup_key,
        )
        self._candidates = check_int("candidates", candidates, minimum=1)
        if self._candidates > 10_000:
            raise ValueError(f"candidates must be at most 10000, got {candidates!r}.")
        self._exploration = check_number("exploration", exploration, low=0.0)
        if not math.isfinite(self._exploration):
            raise ValueError(f"exploration must be finite, got {exploration!r}.")
        self._min_trials = check_int("min_trials", min_trials, minimum=2)
        self._space = space
        self._prototype = predictor
        self._variants = _variants(sampler, self._candidates)
        for variant in self._variants:
            variant._owner = self

    @property
    def sampler(self) -> NASSampler:
        """The wrapped sampler."""
        return self._variants[0]

    _CACHES = (*NASSampler._CACHES, "_fit_lock", "_fits", "_warned")

    def _init_caches(self) -> None:
        super()._init_caches()
        self._fit_lock = threading.Lock()
        self._fits: OrderedDict[tuple[Any, ...], FittedPredictor | None] = OrderedDict()
        self._warned = False

    # -- What the wrapped sampler decides ------------------------------------------------------

    def reward_function(self, study: optuna.Study) -> rewards.RewardFunction:
        return self.sampler.reward_function(study)

    def multi_objective_reward(self) -> rewards.RewardFunction:
        return self.sampler.multi_objective_reward()

    def selection(self, study: optuna.Study) -> Any:
        """The wrapped sampler's ``selection(study)`` (evolution's parent selection).

        Raises:
            AttributeError: The wrapped sampler selects no parents.
        """
        return self.sampler.selection(study)  # type: ignore[attr-defined]

    # -- Learning -------------------------------------------------------------------------------

    def _wrapped_state(self, state: GuidedState) -> Any:
        return state.base

    def initial_state(self) -> GuidedState:
        return GuidedState(base=self.sampler.initial_state(), examples=[])

    def copy_state(self, state: GuidedState) -> GuidedState:
        return GuidedState(base=self.sampler.copy_state(state.base), examples=list(state.examples))

    def learn(self, state: GuidedState, episode: Episode) -> GuidedState:
        state.base = self.sampler.learn(state.base, episode)
        if episode.state == TrialState.COMPLETE and episode.reward is not None and episode.feasible:
            state.examples.append((episode.number, dict(episode.params), float(episode.reward)))
        return state

    # -- Deciding -------------------------------------------------------------------------------

    def plan(self, study: optuna.Study, trial: FrozenTrial, state: GuidedState, n_finished: int) -> Plan | None:
        base_plan = self.sampler.plan(study, trial, state.base, n_finished)
        if len(state.examples) < self._min_trials:
            return None if base_plan is None else GuidedPlan(base_plan.params, base_plan.attrs, base_plan=base_plan)
        made = self._make_candidates(study, trial, state, n_finished, first=base_plan)
        if not made:
            return None if base_plan is None else GuidedPlan(base_plan.params, base_plan.attrs, base_plan=base_plan)
        predicted = self._predict(study, state.examples, [params for params, _, _ in made])
        if predicted is None:
            return None if base_plan is None else GuidedPlan(base_plan.params, base_plan.attrs, base_plan=base_plan)
        mean, spread = predicted
        scores = mean + self._exploration * spread
        best = int(np.argmax(scores))  # the first of equals: candidates are in variant order
        params, plan, variant = made[best]
        attrs = dict(plan.attrs) if plan is not None else {}
        attrs.update(
            {"predicted": float(mean[best]), "spread": float(spread[best]), "candidates": len(made), "variant": variant}
        )
        return GuidedPlan(params=params, attrs=attrs, base_plan=plan, variant=variant)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        super().after_trial(study, trial, state, values)
        for variant in self._variants:
            variant.after_trial(study, trial, state, values)

    def propose(self, decision: Decision) -> int:
        plan = decision.plan
        base_plan = plan.base_plan if isinstance(plan, GuidedPlan) else None
        variant = self._variants[plan.variant if isinstance(plan, GuidedPlan) else 0]
        return variant.propose(dataclasses.replace(decision, state=decision.state.base, plan=base_plan))

    def _make_candidates(
        self, study: optuna.Study, trial: FrozenTrial, state: GuidedState, n_finished: int, *, first: Plan | None
    ) -> list[tuple[dict[str, Any], Plan | None, int]]:
        """Up to ``candidates`` distinct whole architectures, none evaluated or pending, with the
        plan and variant that made each.
        """
        made: list[tuple[dict[str, Any], Plan | None, int]] = []
        seen: set[Any] = set()
        for index, variant in enumerate(self._variants):
            plan = first if index == 0 else variant.plan(study, trial, state.base, n_finished)
            decider = _DryDecider(self, variant, study, trial, state.base, n_finished, plan)
            try:
                self._space.decide(decider)
            except ValueError:
                continue  # the sampler's plan does not fit the space: no candidate from it
            # Cells that compute one function are one candidate where the sampler has a canonical key.
            canonical = self._dedup_key(decider.params) if self._dedup_key is not None else None
            key = canonical if canonical is not None else repr(sorted(decider.params.items(), key=lambda item: item[0]))
            if key in seen or (self.avoid_duplicates and self.is_evaluated(study, decider.params)):
                continue
            seen.add(key)
            made.append((decider.params, plan, index))
        return made

    def _predict(
        self, study: optuna.Study, examples: Sequence[tuple[int, dict[str, Any], float]], params: list[dict[str, Any]]
    ) -> tuple[np.ndarray, np.ndarray] | None:
        """The predicted mean and spread of each of ``params``; ``None`` without enough examples."""
        key = (id(study._storage), study._study_id, tuple(number for number, _, _ in examples))
        with self._fit_lock:
            cached = key in self._fits
            fitted = self._fits.get(key)
        if not cached:
            fitted = self._fit(examples)
            with self._fit_lock:
                self._fits[key] = fitted
                while len(self._fits) > _FITS_KEPT:
                    self._fits.popitem(last=False)
        if fitted is None:
            return None
        return fitted.predict([self._space.spec_from_params(p) for p in params])

    def _fit(self, examples: Sequence[tuple[int, dict[str, Any], float]]) -> FittedPredictor | None:
        """The predictor fitted on the examples that are architectures of the space; ``None``
        when fewer than ``min_trials`` are.
        """
        from optuna_nas.predictors import fit_on_architectures

        specs, targets = [], []
        for _, params, reward in examples:
            try:
                specs.append(self._space.spec_from_params(params))
            except ValueError:
                continue
            targets.append(reward)
        if len(specs) < len(examples) and not self._warned:
            self._warned = True
            _logger.warning(
                f"PredictorGuidedSampler: {len(examples) - len(specs)} of {len(examples)} complete trials are not "
                f"architectures of the space {self._space.name!r} it was given; the predictor learns from the others."
            )
        if len(specs) < self._min_trials:
            return None
        return fit_on_architectures(specs, targets, predictor=self._prototype, seed=self.seed)


class _DryDecider(DistributionDecider):
    """Takes a space's decisions as the wrapped sampler would in a trial, without one: the planned
    value when it is allowed, else the sampler's proposal.
    """

    def __init__(
        self,
        owner: PredictorGuidedSampler,
        variant: NASSampler,
        study: optuna.Study,
        trial: FrozenTrial,
        state: Any,
        n_finished: int,
        plan: Plan | None,
    ) -> None:
        super().__init__()
        self._owner, self._variant, self._study, self._trial = owner, variant, study, trial
        self._state, self._n_finished, self._plan = state, n_finished, plan

    def choose(self, name: str, distribution: BaseDistribution) -> Any:
        owner = self._owner
        actions = owner.actions(distribution)
        rng = self._variant.rng(self._trial.number, name)
        partial = FrozenTrial(
            number=self._trial.number,
            state=TrialState.RUNNING,
            value=None,
            datetime_start=None,
            datetime_complete=None,
            params=dict(self.params),
            distributions=dict(self.distributions),
            user_attrs={},
            system_attrs={},
            intermediate_values={},
            trial_id=-1,  # a trial of nobody's: no cache of the samplers' takes it for a real one
        )
        # Storage was read as the plan began: candidates are checked against that read.
        allowed = owner._allowed_actions(self._study, partial, name, actions, read_storage=False)
        planned = _MISSING if self._plan is None else self._plan.params.get(name, _MISSING)
        if (
            planned is not _MISSING
            and actions.contains(planned)
            and (not actions.exact or actions.action_of(planned) in allowed)
        ):
            return planned
        if actions.size == 1:
            return actions.value_of(0, rng)
        decision = Decision(
            self._study, partial, name, actions, allowed, self._state, self._n_finished, self._plan, rng
        )
        return actions.value_of(int(self._variant.propose(decision)), rng)


_MISSING = object()


def _variants(sampler: NASSampler, count: int) -> list[NASSampler]:
    """``count`` copies of ``sampler``: the first with its seed, the others each with their own."""
    copies = [copy.deepcopy(sampler) for _ in range(count)]
    for index, variant in enumerate(copies[1:], start=1):
        variant._seed = int(np.random.SeedSequence([sampler.seed, index]).generate_state(1)[0])
    return copies


def _guided_evolution(*, seed: int | None, space: Space | None = None, **options: Any) -> PredictorGuidedSampler:
    from optuna_nas.samplers._evolution import AgingEvolutionSampler

    if space is None:
        raise ValueError("space: the evolution-guided sampler needs the search space (space=...).")
    guide_options = ("predictor", "candidates", "exploration", "min_trials")
    guide = {key: options.pop(key) for key in guide_options if key in options}
    return PredictorGuidedSampler(AgingEvolutionSampler(seed=seed, **options), space=space, **guide)


register_sampler("evolution-guided", _guided_evolution)
