"""MetaQNN (Baker et al., ICLR 2017): tabular Q-learning over the sequence of decisions."""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import optuna

from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas.samplers import rewards
from optuna_nas.samplers._base import Decision
from optuna_nas.samplers._base import NASSampler
from optuna_nas.samplers._dedup import DedupKey
from optuna_nas.samplers._history import Episode
from optuna_nas.samplers._registry import register_sampler

StateFunction = Callable[[str, Mapping[str, Any]], Hashable]

#: For budgets of about 100 models: 20 random models, then epsilon 0.5, 0.3 and 0.2 for 10 models
#: each, then 0.1. (The paper: 1.0 for 1,500 of 3,500 models, then 0.9 .. 0.1 for 100 or 150 each:
#: ``PAPER_EPSILON_SCHEDULE``.) Chosen with ``DEFAULT_LEARNING_RATE`` on the 12-epoch validation
#: signal of NAS-Bench-201's CIFAR-100 and ImageNet16-120 columns (seeds 100-139), never a test column.
DEFAULT_EPSILON_SCHEDULE = ((1.0, 20), (0.5, 10), (0.3, 10), (0.2, 10), (0.1, 1))
PAPER_EPSILON_SCHEDULE = (
    (1.0, 1500),
    (0.9, 100),
    (0.8, 100),
    (0.7, 100),
    (0.6, 150),
    (0.5, 150),
    (0.4, 150),
    (0.3, 150),
    (0.2, 150),
    (0.1, 150),
)
#: Q-learning rate for budgets of about 100 models (the paper: 0.01 over 3,500 models).
DEFAULT_LEARNING_RATE = 0.3


def decision_state(name: str, params: Mapping[str, Any]) -> str:
    """The default state of a decision: its name and the decision taken just before it."""
    if not params:
        return json.dumps([name, None])
    previous = list(params)[-1]
    return json.dumps([name, previous, params[previous]], default=repr)


class MetaQNNSampler(NASSampler):
    """MetaQNN: an epsilon-greedy Q-learning agent picks each decision (Baker et al., 2017).

    Paper: https://arxiv.org/abs/1611.02167

    Every decision a trial asks for is a step of an episode: the state is given by ``state`` (by
    default the decision's name and the decision taken just before it; for
    :class:`~optuna_nas.spaces.ChainSpace` pass ``state=space.metaqnn_state``, MetaQNN's own state
    of layer depth, previous layer and representation-size bucket), the action is the choice. Only
    the last step is rewarded, with the trial's reward. With probability epsilon an action is drawn
    uniformly, else the one with the highest Q-value (ties drawn uniformly).

    After every finished model the Q-table is updated, as in the paper, from ``replay`` trajectories
    drawn (with replacement) from the memory of every episode so far, each replayed from its last
    step to its first: ``Q(s, a) <- (1 - alpha) Q(s, a) + alpha (r + gamma max_a' Q(s', a'))``,
    where ``r`` is the reward on the last step and 0 elsewhere.

    The Q-table is rebuilt from the study's finished trials (storage is the truth):
    :meth:`q_table` exports it.

    Args:
        epsilon_schedule: ``(epsilon, number of models)`` steps; after the last step its epsilon
            stays. Default: :data:`DEFAULT_EPSILON_SCHEDULE`, for budgets of about 100 models
            (``PAPER_EPSILON_SCHEDULE`` is the paper's, for 3,500).
        learning_rate: Q-learning rate alpha. Default 0.3, for budgets of about 100 models: with
            the paper's 0.01 the table has not learned by model 100 (on NAS-Bench-201 it ends level
            with random search); use 0.01 with the paper's schedule.
        discount: Discount gamma (the paper: 1.0).
        replay: Trajectories replayed after every model (the paper: 100).
        q_init: Initial Q-value of a state-action pair. The paper uses 0.5, the middle of its
            accuracies in [0, 1]; the default ``None`` takes the mean reward of the models finished
            when the pair is first updated, the same idea on any reward scale, so that a pair's
            value rises above or falls below its untried neighbours by what it earned, not by how
            often it was tried.
        state: ``state(decision_name, params_so_far) -> hashable``; see above.
        seed, reward, pruned, float_bins, avoid_duplicates, dedup_key: As in
            :class:`~optuna_nas.samplers.NASSampler`: rewards for several objectives come from
            ``reward`` (default: :func:`~optuna_nas.samplers.rewards.dominance`, a Pareto-rank
            reward averaged with the first objective's rank; ``rewards.first_objective`` steers on
            the first objective alone); a pruned trial's reward follows ``pruned`` (default: its last reported value,
            else the worst reward so far).

    Example:
        >>> import optuna
        >>> from optuna_nas import samplers, spaces
        >>> space = spaces.NASBench201Space()
        >>> sampler = samplers.MetaQNNSampler(seed=0)
        >>> study = optuna.create_study(direction="maximize", sampler=sampler)
        >>> study.optimize(lambda t: float(len(set(space.suggest(t).ops))), n_trials=5)
        >>> table = sampler.q_table(study)
    """

    def __init__(
        self,
        *,
        epsilon_schedule: Sequence[tuple[float, int]] = DEFAULT_EPSILON_SCHEDULE,
        learning_rate: float = DEFAULT_LEARNING_RATE,
        discount: float = 1.0,
        replay: int = 100,
        q_init: float | None = None,
        state: StateFunction | None = None,
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
        self._schedule = _check_schedule(epsilon_schedule)
        self._alpha = check_number("learning_rate", learning_rate, low=0.0, high=1.0, low_open=True)
        self._gamma = check_number("discount", discount, low=0.0, high=1.0)
        self._replay = check_int("replay", replay, minimum=0)
        if self._replay > 10_000:
            raise ValueError(f"replay must be at most 10000 replayed models per new one, got {replay!r}.")
        self._q_init = None if q_init is None else check_number("q_init", q_init)
        if state is not None and not callable(state):
            raise ValueError(f"state must be a function (name, params) -> hashable, got {state!r}.")
        self._state_fn = state or decision_state

    def epsilon(self, n_models: int) -> float:
        """Epsilon after ``n_models`` finished models."""
        seen = 0
        for epsilon, count in self._schedule:
            seen += count
            if n_models < seen:
                return epsilon
        return self._schedule[-1][0]

    def q_table(self, study: optuna.Study) -> dict[str, list[float]]:
        """The Q-table learned from every finished trial of ``study``, as JSON-safe data.

        Keys are ``"<state>#<number of actions>"``; values the Q-value of each action, in the order
        of the distribution's choices (or bins).
        """
        state = self.learned_state(study)
        return {key: list(values) for key, values in state["q"].items()}

    # -- Learning -------------------------------------------------------------------------------

    def initial_state(self) -> dict[str, Any]:
        return {"q": {}, "memory": [], "reward_sum": 0.0}

    def copy_state(self, state: dict[str, Any]) -> dict[str, Any]:
        # Trajectories in the memory never change once stored; only the list and the Q-values do.
        return {
            "q": {key: list(values) for key, values in state["q"].items()},
            "memory": list(state["memory"]),
            "reward_sum": state["reward_sum"],
        }

    def _state_key(self, name: str, params: Mapping[str, Any], size: int) -> str:
        state = self._state_fn(name, params)
        text = state if isinstance(state, str) else json.dumps(state, default=repr)
        return f"{text}#{size}"

    def _trajectory(self, episode: Episode) -> list[tuple[str, int]]:
        steps = []
        so_far: dict[str, Any] = {}
        for name, value in episode.params.items():
            actions = self.actions(episode.distributions[name])
            if actions.size > 1:
                steps.append((self._state_key(name, so_far, actions.size), actions.action_of(value)))
            so_far[name] = value
        return steps

    def learn(self, state: dict[str, Any], episode: Episode) -> dict[str, Any]:
        if episode.reward is None:
            return state
        trajectory = self._trajectory(episode)
        if not trajectory:
            return state
        memory = state["memory"]
        memory.append((trajectory, episode.reward))
        state["reward_sum"] += episode.reward
        initial = self._q_init if self._q_init is not None else state["reward_sum"] / len(memory)
        rng = self.rng(episode.number, "replay")
        for index in rng.integers(0, len(memory), size=self._replay):
            replayed, reward = memory[index]
            self._update(state["q"], replayed, reward, initial)
        return state

    def _update(
        self, q: dict[str, list[float]], trajectory: list[tuple[str, int]], reward: float, initial: float
    ) -> None:
        alpha, gamma = self._alpha, self._gamma
        for step in range(len(trajectory) - 1, -1, -1):
            key, action = trajectory[step]
            if step == len(trajectory) - 1:
                target = reward
            else:
                next_key = trajectory[step + 1][0]
                target = gamma * max(q.get(next_key) or [initial])
            values = q.get(key)
            if values is None:
                values = q[key] = [initial] * int(key.rsplit("#", 1)[1])
            values[action] = (1 - alpha) * values[action] + alpha * target

    # -- Proposing ------------------------------------------------------------------------------

    def propose(self, decision: Decision) -> int:
        if decision.rng.random() < self.epsilon(decision.n_finished):
            return decision.random_action()
        values = decision.state["q"].get(self._state_key(decision.name, decision.params, decision.actions.size))
        if values is None:
            return decision.random_action()
        best = max(values[a] for a in decision.allowed)
        return decision.random_action([a for a in decision.allowed if values[a] == best])


def _check_schedule(schedule: Sequence[tuple[float, int]]) -> tuple[tuple[float, int], ...]:
    try:
        pairs = [(e, n) for e, n in schedule]
    except (TypeError, ValueError):
        raise ValueError(f"epsilon_schedule must be (epsilon, number of models) pairs, got {schedule!r}.") from None
    if any(
        isinstance(e, bool) or not isinstance(e, (int, float)) or isinstance(n, bool) or not isinstance(n, int)
        for e, n in pairs
    ):
        raise ValueError(f"epsilon_schedule must pair a number epsilon with an integer count, got {schedule!r}.")
    steps = tuple((float(e), int(n)) for e, n in pairs)
    if not steps or any(not 0 <= e <= 1 or n < 1 for e, n in steps):
        raise ValueError(
            f"epsilon_schedule must be non-empty, with epsilons in [0, 1] and counts >= 1, got {schedule!r}."
        )
    return steps


register_sampler("metaqnn", lambda *, seed, **options: MetaQNNSampler(seed=seed, **options))
