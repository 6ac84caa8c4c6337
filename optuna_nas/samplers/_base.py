"""What every NAS sampler of the project shares.

* All decisions are taken one at a time in :meth:`sample_independent` (define-by-run); there is
  no relative sampling.
* Learned state is a deterministic function of the finished trials numbered below the current
  one, in number order, and the seed: :meth:`_learned_state` rebuilds it from storage, keeping an
  in-memory cache that is extended while trials finish in order and rebuilt when they do not.
* Randomness for a decision comes from ``(seed, trial.number, decision name)``.
* An architecture already evaluated (same params) is not proposed again while an unseen one
  remains: a choice is excluded when every architecture it leads to was evaluated
  (:mod:`optuna_nas.samplers._dedup`).
"""

from __future__ import annotations

import abc
import copy
import threading
import zlib
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial

from optuna_nas.samplers import rewards
from optuna_nas.samplers._actions import ActionSpace
from optuna_nas.samplers._dedup import EvaluatedTrie
from optuna_nas.samplers._history import Episode
from optuna_nas.samplers._history import episodes
from optuna_nas.samplers._history import finished_trials
from optuna_nas.samplers._history import PRUNED_POLICIES
from optuna_nas._validation import check_int
from optuna_nas._validation import check_seed


class NASSampler(BaseSampler, abc.ABC):
    """Base of the project's samplers: history replay, rewards, per-trial randomness, actions.

    Args:
        seed: Seed of every random draw. ``None`` draws one at construction (not reproducible).
        reward: Reward function for multi-objective studies (see :mod:`optuna_nas.samplers.rewards`);
            default: the first objective, signed by its direction. Single-objective studies use the
            value signed by the direction unless a reward is given.
        pruned: How a pruned trial is rewarded: ``last_value`` (default), ``worst`` or ``skip``
            (see :func:`optuna_nas.samplers._history.episodes`).
        float_bins: Bins a float (or a wide int) range is cut into.
        avoid_duplicates: Do not complete an architecture that was already evaluated while another
            choice remains.
    """

    def __init__(
        self,
        *,
        seed: int | None = None,
        reward: rewards.RewardFunction | None = None,
        pruned: str = "last_value",
        float_bins: int = 10,
        avoid_duplicates: bool = True,
    ) -> None:
        self._seed = check_seed(seed)
        if reward is not None and not callable(reward):
            raise ValueError(f"reward must be a function (values, directions) -> float, got {reward!r}.")
        self._reward = reward
        if pruned not in PRUNED_POLICIES:
            raise ValueError(f"pruned must be one of {list(PRUNED_POLICIES)}, got {pruned!r}.")
        self._pruned = pruned
        self._float_bins = check_int("float_bins", float_bins, minimum=2)
        self._avoid_duplicates = bool(avoid_duplicates)
        self._lock = threading.RLock()
        self._cache: dict[tuple[int, int], tuple[list[tuple[int, str | None]], Any]] = {}
        self._evaluated_cache: dict[tuple[int, int], tuple[list[Any], EvaluatedTrie]] = {}
        self._episode_cache: dict[tuple[int, int], dict[int, Episode]] = {}

    # -- Optuna's sampler interface -------------------------------------------------------------

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

    def sample_independent(
        self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution
    ) -> Any:
        actions = ActionSpace(param_distribution, self._float_bins)
        rng = self._rng(trial.number, param_name)
        if actions.size == 1:
            return actions.value_of(0, rng)
        allowed = self._allowed_actions(study, trial, param_name, actions)
        return self._propose(study, trial, param_name, actions, allowed, rng)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_lock"] = None
        state["_cache"] = {}
        state["_evaluated_cache"] = {}
        state["_episode_cache"] = {}
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    def __deepcopy__(self, memo: dict[int, Any]) -> NASSampler:
        clone = copy.copy(self)
        clone.__setstate__(self.__getstate__())
        return clone

    # -- What subclasses implement --------------------------------------------------------------

    @abc.abstractmethod
    def _propose(
        self,
        study: optuna.Study,
        trial: FrozenTrial,
        name: str,
        actions: ActionSpace,
        allowed: list[int],
        rng: np.random.Generator,
    ) -> Any:
        """Return the value of decision ``name``: one of ``allowed`` actions (or a value within it)."""

    def _initial_state(self) -> Any:
        """The learned state before any trial."""
        return None

    def _copy_state(self, state: Any) -> Any:
        """A copy of ``state`` that :meth:`_learn` may change without touching the original."""
        return copy.deepcopy(state)

    def _learn(self, state: Any, episode: Episode) -> Any:
        """The state after ``episode`` finished (episodes arrive in trial-number order)."""
        return state

    # -- Shared machinery -----------------------------------------------------------------------

    @property
    def seed(self) -> int:
        """The seed every draw derives from."""
        return self._seed

    def _rng(self, trial_number: int, *keys: str) -> np.random.Generator:
        words = [self._seed, trial_number] + [zlib.crc32(key.encode()) for key in keys]
        return np.random.default_rng(words)

    def _reward_fn(self, study: optuna.Study) -> rewards.RewardFunction:
        return self._reward or rewards.first_objective

    def _episodes(self, study: optuna.Study, before: int | None) -> list[Episode]:
        """Episodes of the finished trials numbered below ``before``; finished trials never change,
        so those already converted are reused."""
        trials = finished_trials(study, before=before)
        key = (id(study._storage), study._study_id)
        with self._lock:
            known = self._episode_cache.setdefault(key, {})
            result = []
            for trial in trials:
                started = trial.datetime_start.isoformat() if trial.datetime_start else None
                cached = known.get(trial.number)
                if cached is None or cached.started != started:
                    break
                result.append(cached)
            else:
                return result
            # A pruned trial's reward may depend on the trials before it, so once a trial is new
            # (or finished out of order) every episode is converted again.
            fresh = episodes(trials, study.directions, self._reward_fn(study), self._pruned)
            known.update((episode.number, episode) for episode in fresh)
            return fresh

    def _learned_state(self, study: optuna.Study, history: list[Episode]) -> Any:
        """The state after every episode of ``history`` (in number order), from the cache if it can."""
        key = (id(study._storage), study._study_id)
        numbers = [(e.number, e.started) for e in history]
        with self._lock:
            cached_numbers, state = self._cache.get(key, ([], None))
            prefix = len(cached_numbers)
            reusable = cached_numbers == numbers[:prefix] and state is not None
            if not reusable:
                prefix, state = 0, self._initial_state()
            else:
                # Another thread may still be proposing from the cached state: extend a copy.
                state = self._copy_state(state) if prefix < len(numbers) else state
            for index in range(prefix, len(history)):
                state = self._learn(state, history[index])
            self._cache[key] = (numbers, state)
            return state

    def _allowed_actions(
        self, study: optuna.Study, trial: FrozenTrial, name: str, actions: ActionSpace
    ) -> list[int]:
        everything = list(range(actions.size))
        if not self._avoid_duplicates or not actions.exact:
            return everything
        values = {action: actions.value_of(action, np.random.default_rng(0)) for action in everything}
        try:
            seen = self._evaluated(study).exhausted_choices(trial.params, name, values.values())
        except TypeError:  # unhashable choices cannot be compared
            return everything
        fresh = [action for action in everything if values[action] not in seen]
        return fresh or everything

    def _evaluated(self, study: optuna.Study) -> EvaluatedTrie:
        trials = finished_trials(study)
        key = (id(study._storage), study._study_id)
        fingerprint = [(t.number, t.datetime_start) for t in trials]
        with self._lock:
            cached = self._evaluated_cache.get(key)
            if cached is not None and cached[0] == fingerprint:
                return cached[1]
            trie = EvaluatedTrie(((t.params, t.distributions) for t in trials), self._float_bins)
            self._evaluated_cache[key] = (fingerprint, trie)
            return trie
