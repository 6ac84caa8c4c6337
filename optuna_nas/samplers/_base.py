"""The public base of the project's samplers, and the contract its hooks keep.

A subclass says how it learns and how it decides; the base does the rest:

* :meth:`NASSampler.initial_state`, :meth:`NASSampler.learn` (and :meth:`NASSampler.copy_state`):
  the learned state is the fold of ``learn`` over the finished trials numbered below the current
  one, in number order, as :class:`Episode` objects with settled rewards. The base rebuilds it from
  storage and caches it (once per trial; checkpoints for the next ones), so it is the same in every
  thread, process and machine on the storage.
* :meth:`NASSampler.plan` (optional): the whole architecture chosen before the first decision
  (evolution's child, a predictor's pick); planned values are taken as they come, if still allowed.
* :meth:`NASSampler.propose`: one action for one decision, from :class:`Decision`.

Duplicates are avoided for every subclass: an action is allowed unless every architecture it leads
to was evaluated or is pending (decided and still running in some worker).
"""

from __future__ import annotations

import abc
import copy
import dataclasses
import threading
import weakref
import zlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas._validation import check_bool
from optuna_nas._validation import check_int
from optuna_nas._validation import check_seed
from optuna_nas.samplers import rewards
from optuna_nas.samplers._actions import ActionSpace
from optuna_nas.samplers._dedup import DedupKey
from optuna_nas.samplers._dedup import EvaluatedTrie
from optuna_nas.samplers._history import PRUNED_POLICIES
from optuna_nas.samplers._history import Episode
from optuna_nas.samplers._history import RewardLedger
from optuna_nas.samplers._history import to_episode
from optuna_nas.samplers._replay import Learner
from optuna_nas.samplers._replay import StudyReplay
from optuna_nas.samplers._replay import _StudyReplaced
from optuna_nas.storages import check_param_order

#: Trials whose learned state and plan are kept until they finish (ask-and-tell may hold many open).
_TRIAL_CONTEXTS_KEPT = 4096


@dataclasses.dataclass(frozen=True)
class Plan:
    """A whole architecture chosen before a trial's first decision.

    Attributes:
        params: The value planned for each decision. A decision the plan lacks, or whose planned
            value is no longer allowed (another worker started that architecture), goes to
            :meth:`NASSampler.propose`.
        attrs: What to record about the plan (e.g. the parent and the mutation), written to the
            trial's system attrs as ``"<class name>:<key>"`` unless the trial was enqueued with
            fixed params (then the plan is not what the trial ran). A decision whose planned value
            was no longer allowed when it came (another worker started that architecture meanwhile)
            is listed in ``"<class name>:unplanned"``.
    """

    params: dict[str, Any] = dataclasses.field(default_factory=dict)
    attrs: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class Decision:
    """Everything :meth:`NASSampler.propose` needs to choose one action.

    Attributes:
        study: The study.
        trial: The trial deciding (``trial.params`` holds the decisions already taken).
        name: The decision's name.
        actions: Its actions (choices, or bins of a range).
        allowed: The actions that do not lead only to evaluated or pending architectures (all of
            them if every one does), in increasing order.
        state: The learned state of this trial (shared: read it, do not change it).
        n_finished: How many finished trials the state was learned from.
        plan: The trial's plan, if :meth:`NASSampler.plan` made one.
        rng: The random generator of this decision, seeded by ``(seed, trial number, name)``.
    """

    study: optuna.Study
    trial: FrozenTrial
    name: str
    actions: ActionSpace
    allowed: list[int]
    state: Any
    n_finished: int
    plan: Plan | None
    rng: np.random.Generator

    @property
    def params(self) -> dict[str, Any]:
        """The decisions already taken in this trial, in order."""
        return self.trial.params

    def random_action(self, among: list[int] | None = None) -> int:
        """One of ``among`` (default: the allowed actions), uniformly."""
        choices = self.allowed if among is None else among
        return int(choices[int(self.rng.integers(len(choices)))])


@dataclasses.dataclass
class _TrialContext:
    state: Any
    n_finished: int
    plan: Plan | None
    unplanned: list[str] = dataclasses.field(default_factory=list)


class NASSampler(BaseSampler, abc.ABC):
    """Base of the project's samplers: history replay, rewards, per-trial randomness, duplicates.

    Subclass it to write a NAS controller: implement :meth:`propose`, and :meth:`initial_state`
    with :meth:`learn` if the controller learns (and :meth:`plan` if it chooses whole
    architectures). The README's section for sampler authors has a complete example.

    Args:
        seed: Seed of every random draw. ``None`` draws one at construction (not reproducible).
        reward: Reward function for multi-objective studies (see :mod:`optuna_nas.samplers.rewards`);
            default: :meth:`multi_objective_reward`, which trades the objectives off
            (:func:`~optuna_nas.samplers.rewards.dominance` unless a sampler says otherwise); pass
            ``rewards.first_objective`` to steer on the first objective alone. Single-objective
            studies use the value signed by the direction unless a reward is given.
        pruned: How a pruned trial is rewarded: ``last_value`` (default: its last reported value,
            else as ``worst``), ``worst`` (the lowest reward of the complete trials before it) or
            ``skip``. Failed trials teach nothing. Trials that violate their constraints
            (``trial.set_constraint``) are rewarded below every feasible one
            (:class:`~optuna_nas.samplers.RewardLedger`).
        float_bins: Bins a float (or a wide int) range is cut into (2 to 10,000).
        avoid_duplicates: Do not complete an architecture that was evaluated, or is being evaluated
            by another worker, while another choice remains.
        dedup_key: ``dedup_key(params) -> hashable``: architectures with equal keys count as one for
            duplicate avoidance (returns ``None`` or raises ``KeyError``/``ValueError`` for params
            that are not a whole architecture yet). Spaces offer one: ``space.dedup_key``. Default:
            the params themselves.

    Running trials: learning reads finished trials only. A running trial counts for duplicate
    avoidance once its architecture is decided (``space.suggest`` marks it, or
    :func:`~optuna_nas.samplers.mark_decided`), in every worker: the pending architecture is not
    proposed again while it runs (as if it had been evaluated); its result is learned when it
    finishes.
    """

    #: The sampler whose storage replay this one reads, when it makes candidates for another
    #: (:class:`~optuna_nas.samplers.PredictorGuidedSampler`); ``None``: its own.
    _owner: NASSampler | None = None
    #: The attributes :meth:`_init_caches` makes: left out of copies and pickles, made again after.
    _CACHES: tuple[str, ...] = ("_lock", "_replays", "_contexts")

    def __init__(
        self,
        *,
        seed: int | None = None,
        reward: rewards.RewardFunction | None = None,
        pruned: str = "last_value",
        float_bins: int = 10,
        avoid_duplicates: bool = True,
        dedup_key: DedupKey | None = None,
    ) -> None:
        self._seed = check_seed(seed)
        if reward is not None and not callable(reward):
            raise ValueError(f"reward must be a function (values, directions) -> float, got {reward!r}.")
        makers: tuple[object, ...] = (rewards.dominance, rewards.linear, rewards.mnas, rewards.from_string)
        if any(reward is maker for maker in makers):
            name = getattr(reward, "__name__", "")
            raise ValueError(f"reward: rewards.{name} makes a reward; call it, e.g. rewards.{name}(...).")
        self._reward = reward
        if pruned not in PRUNED_POLICIES:
            raise ValueError(f"pruned must be one of {list(PRUNED_POLICIES)}, got {pruned!r}.")
        self._pruned = pruned
        self._float_bins = check_int("float_bins", float_bins, minimum=2)
        if self._float_bins > 10_000:
            raise ValueError(f"float_bins must be at most 10000, got {float_bins!r}.")
        self._avoid_duplicates = check_bool("avoid_duplicates", avoid_duplicates)
        if dedup_key is not None and not callable(dedup_key):
            raise ValueError(f"dedup_key must be a function params -> hashable, got {dedup_key!r}.")
        self._dedup_key = dedup_key
        self._init_caches()

    def _init_caches(self) -> None:
        self._lock = threading.Lock()
        self._replays: weakref.WeakKeyDictionary[Any, dict[int, StudyReplay]] = weakref.WeakKeyDictionary()
        self._contexts: OrderedDict[tuple[int, int], _TrialContext] = OrderedDict()

    # -- The hooks ----------------------------------------------------------------------------------

    @abc.abstractmethod
    def propose(self, decision: Decision) -> int:
        """Choose the action of one decision.

        Args:
            decision: The decision, the trial's learned state and plan, and its random generator.

        Returns:
            One of ``decision.allowed`` (an index into ``decision.actions``). The base turns it into
            a value: the choice itself, or a draw inside the bin.
        """

    def initial_state(self) -> Any:
        """The learned state before any trial (default ``None``: the sampler does not learn)."""
        return None

    def learn(self, state: Any, episode: Episode) -> Any:
        """The state after ``episode`` finished; episodes arrive in trial-number order.

        It may change ``state`` in place and return it: the base hands it a copy
        (:meth:`copy_state`) whenever the original is still in use. It must be a function of
        ``state``, ``episode`` and the seed only (use ``self.rng(episode.number, ...)`` for
        randomness), so every process learns the same.
        """
        return state

    def copy_state(self, state: Any) -> Any:
        """A copy of ``state`` that :meth:`learn` may change without touching the original."""
        return copy.deepcopy(state)

    def plan(self, study: optuna.Study, trial: FrozenTrial, state: Any, n_finished: int) -> Plan | None:
        """Optionally choose the whole architecture before the trial's first decision.

        Args:
            study: The study.
            trial: The new trial (no params yet).
            state: Its learned state (read only).
            n_finished: How many finished trials the state was learned from.

        Use :meth:`rng` with ``trial.number`` for randomness and :meth:`is_evaluated` to skip
        architectures already evaluated or pending. Default: no plan.
        """
        return None

    # -- Helpers for subclasses ---------------------------------------------------------------------

    @property
    def avoid_duplicates(self) -> bool:
        """Whether the sampler avoids duplicates (and trials marked decided claim their architecture:
        see :func:`~optuna_nas.samplers.mark_decided`).
        """
        return self._avoid_duplicates

    @property
    def seed(self) -> int:
        """The seed every draw derives from."""
        return self._seed

    def rng(self, trial_number: int, *keys: str) -> np.random.Generator:
        """The random generator of ``(seed, trial_number, *keys)``: the same in every process."""
        words = [self._seed, trial_number] + [zlib.crc32(key.encode()) for key in keys]
        return np.random.default_rng(words)

    def reward_function(self, study: optuna.Study) -> rewards.RewardFunction:
        """The reward of a complete trial's values: the ``reward`` argument if given; else for
        several objectives :meth:`multi_objective_reward`, and the value signed by its direction for
        one.
        """
        if self._reward is not None:
            return self._reward
        if len(study.directions) > 1:
            return self.multi_objective_reward()
        return rewards.first_objective

    def multi_objective_reward(self) -> rewards.RewardFunction:
        """The reward of studies with several objectives when none is given: by default
        :func:`~optuna_nas.samplers.rewards.dominance`, the share of the earlier trials that do not
        dominate the trial averaged with its rank in the first objective. Override it to change a
        sampler's default.
        """
        return rewards.dominance()

    def actions(self, distribution: BaseDistribution) -> ActionSpace:
        """The actions of ``distribution`` under this sampler's binning."""
        return ActionSpace(distribution, self._float_bins)

    def is_evaluated(self, study: optuna.Study, params: dict[str, Any]) -> bool:
        """Whether the architecture of ``params`` was evaluated or is pending (decided, running), as
        of the last read of storage (every decision and every plan reads it first).
        """
        replay = self._study_replay(study)
        with replay.lock:
            return replay.trie.contains(params)

    def learned_state(self, study: optuna.Study, *, before: int | None = None) -> Any:
        """The learned state from the study's finished trials numbered below ``before`` (all: ``None``),
        read from storage now.
        """
        if self._owner is not None:
            return self._owner._wrapped_state(self._owner.learned_state(study, before=before))
        return self._synced_replay(study).state_before(before)

    def guided(self, *, space: Any, **options: Any) -> NASSampler:
        """This sampler guided by an accuracy predictor: each trial, it makes candidates and the
        predictor picks the one to train (:class:`~optuna_nas.samplers.PredictorGuidedSampler`).

        Args:
            space: The space the objective suggests from.
            options: ``predictor``, ``candidates``, ``exploration``, ``min_trials``, as
                :class:`~optuna_nas.samplers.PredictorGuidedSampler` takes them.

        Example:
            >>> from optuna_nas import samplers, spaces
            >>> sampler = samplers.AgingEvolutionSampler(seed=0).guided(space=spaces.NASBench201Space())
            >>> type(sampler).__name__
            'PredictorGuidedSampler'
        """
        from optuna_nas.samplers._guided import PredictorGuidedSampler

        return PredictorGuidedSampler(self, space=space, **options)

    def _wrapped_state(self, state: Any) -> Any:
        """The part of ``state`` that the samplers this one makes candidates with learned (for a
        sampler that wraps others, such as :class:`~optuna_nas.samplers.PredictorGuidedSampler`).
        """
        return state

    def architecture_holders(self, study: optuna.Study, trial_number: int, params: dict[str, Any]) -> list[FrozenTrial]:
        """The other trials that hold exactly ``params``, read from storage now: the first finished
        trial that evaluated them and the running ones marked decided (used by
        :func:`~optuna_nas.samplers.mark_decided` to claim an architecture without reading every
        trial).
        """
        replay = self._synced_replay(study)
        storage = study._storage
        return [
            storage.get_trial(storage.get_trial_id_from_study_id_trial_number(study._study_id, number))
            for number in replay.holders(params, current=trial_number)
        ]

    # -- Optuna's sampler interface -----------------------------------------------------------------

    def reseed_rng(self) -> None:
        """Keep the seed.

        Optuna calls this when it runs trials in several threads. Every draw here is keyed by
        ``(seed, trial.number)``, so threads never repeat each other's draws, and the learned state
        stays a function of storage and seed.
        """

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(
        self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
    ) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        try:
            context = self._context(study, trial)
        except Exception:  # noqa: BLE001
            # Raised here, inside study.ask(), the error would leave the new trial RUNNING; the
            # first decision computes the context again and raises inside the objective, where
            # Optuna fails the trial.
            return
        if context.plan is None or not context.plan.attrs or "fixed_params" in trial.system_attrs:
            return
        prefix = type(self).__name__
        for key, value in context.plan.attrs.items():
            study._storage.set_trial_system_attr(trial._trial_id, f"{prefix}:{key}", value)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        with self._lock:
            self._contexts.pop((id(study._storage), trial._trial_id), None)

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        actions = self.actions(param_distribution)
        rng = self.rng(trial.number, param_name)
        if actions.size == 1:
            return actions.value_of(0, rng)
        context = self._context(study, trial)
        allowed = self._allowed_actions(study, trial, param_name, actions)
        if context.plan is not None and param_name in context.plan.params:
            planned = context.plan.params[param_name]
            if actions.contains(planned) and (not actions.exact or actions.action_of(planned) in allowed):
                return planned
            if context.plan.attrs and "fixed_params" not in trial.system_attrs:
                context.unplanned.append(param_name)
                study._storage.set_trial_system_attr(
                    trial._trial_id, f"{type(self).__name__}:unplanned", list(context.unplanned)
                )
        decision = Decision(
            study, trial, param_name, actions, allowed, context.state, context.n_finished, context.plan, rng
        )
        action = self.propose(decision)
        if isinstance(action, bool) or not isinstance(action, (int, np.integer)) or not 0 <= action < actions.size:
            raise RuntimeError(
                f"{type(self).__name__}.propose returned {action!r} for {param_name!r}; "
                f"expected an action in [0, {actions.size})."
            )
        return actions.value_of(int(action), rng)

    # -- Pickling (Optuna copies samplers; caches are rebuilt from storage) --------------------

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in self._CACHES}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_caches()

    def __deepcopy__(self, memo: dict[int, Any]) -> NASSampler:
        clone = type(self).__new__(type(self))
        memo[id(self)] = clone
        clone.__setstate__(copy.deepcopy(self.__getstate__(), memo))
        return clone

    # -- Machinery --------------------------------------------------------------------------------

    def _convert(self, study: optuna.Study) -> Any:
        directions: list[StudyDirection] = list(study.directions)
        reward_fn = self.reward_function(study)
        return lambda trial: to_episode(trial, directions, reward_fn, self._pruned)

    def _ledger_factory(self, study: optuna.Study) -> Callable[[], RewardLedger]:
        directions: list[StudyDirection] = list(study.directions)
        reward_fn = self.reward_function(study)
        relative = reward_fn if isinstance(reward_fn, rewards.RelativeReward) else None
        return lambda: RewardLedger(self._pruned, relative=relative, directions=directions)

    def _study_replay(self, study: optuna.Study) -> StudyReplay:
        if self._owner is not None:
            return self._owner._study_replay(study)
        with self._lock:
            by_study = self._replays.get(study._storage)
            if by_study is None:
                check_param_order(study._storage, user=type(self).__name__)
                by_study = self._replays[study._storage] = {}
            replay = by_study.get(study._study_id)
            if replay is None:
                learner = Learner(
                    self.initial_state, self.learn, self.copy_state, self._convert(study), self._ledger_factory(study)
                )
                trie = EvaluatedTrie(self._float_bins, self._dedup_key)
                replay = by_study[study._study_id] = StudyReplay(learner, trie)
            return replay

    def _synced_replay(self, study: optuna.Study) -> StudyReplay:
        """The study's replay, after taking in what storage holds now: all trials on first contact,
        then only the trials that were unfinished and the new ones.
        """
        if self._owner is not None:
            return self._owner._synced_replay(study)
        replay = self._study_replay(study)
        try:
            if replay.synced:
                replay.refresh(study._storage, study._study_id)
            else:
                replay.sync(study._storage.get_all_trials(study._study_id, deepcopy=False))
        except _StudyReplaced:
            with self._lock:
                self._replays[study._storage].pop(study._study_id, None)
            replay = self._study_replay(study)
            replay.sync(study._storage.get_all_trials(study._study_id, deepcopy=False))
        return replay

    def _context(self, study: optuna.Study, trial: FrozenTrial) -> _TrialContext:
        key = (id(study._storage), trial._trial_id)
        with self._lock:
            context = self._contexts.get(key)
        if context is not None:
            return context
        replay = self._synced_replay(study)
        with replay.lock:
            state = replay.state_before(trial.number)
            n_finished = replay.n_finished(trial.number)
        plan = self.plan(study, trial, state, n_finished)
        if plan is not None and not isinstance(plan, Plan):
            raise RuntimeError(f"{type(self).__name__}.plan returned {plan!r}; expected a Plan or None.")
        context = _TrialContext(state, n_finished, plan)
        with self._lock:
            context = self._contexts.setdefault(key, context)
            while len(self._contexts) > _TRIAL_CONTEXTS_KEPT:
                self._contexts.popitem(last=False)
        return context

    def _allowed_actions(
        self, study: optuna.Study, trial: FrozenTrial, name: str, actions: ActionSpace, *, read_storage: bool = True
    ) -> list[int]:
        """The actions that do not lead only to evaluated or pending architectures (all of them if
        every one does), after reading storage (``read_storage``) or as of the last read.
        """
        everything = list(range(actions.size))
        if not self._avoid_duplicates or not actions.exact:
            return everything
        values = actions.values()
        replay = self._synced_replay(study) if read_storage else self._study_replay(study)
        with replay.lock:
            seen = replay.trie.exhausted_choices(trial.params, name, values)
        fresh = [action for action in everything if not _member(values[action], seen)]
        return fresh or everything


def _member(value: Any, values: set[Any]) -> bool:
    try:
        return value in values
    except TypeError:
        return False
