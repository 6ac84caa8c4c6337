"""An RNN controller trained with REINFORCE (Zoph & Le 2017), and ENAS's settings of it (Pham et al. 2018)."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas._validation import check_one_of
from optuna_nas.samplers import rewards
from optuna_nas.samplers._base import Decision
from optuna_nas.samplers._base import NASSampler
from optuna_nas.samplers._dedup import DedupKey
from optuna_nas.samplers._history import Episode
from optuna_nas.samplers._registry import register_sampler
from optuna_nas.samplers.controllers import Adam
from optuna_nas.samplers.controllers import Carry
from optuna_nas.samplers.controllers import SequencePolicy
from optuna_nas.samplers.controllers import Step
from optuna_nas.samplers.controllers import decision_key

#: How a reward becomes the advantage that scales its policy gradient.
ADVANTAGES = ("baseline", "rank")
#: Trials whose LSTM state is kept between decisions (ask-and-tell may hold many open).
_CARRIES_KEPT = 4096
#: Bounds that keep a rebuild of the learned state from taking hours.
MAX_BATCH_SIZE = 10_000
MAX_REPLAY = 1_000


class ReinforceSampler(NASSampler):
    """Zoph & Le (2017): an LSTM controller writes each architecture decision by decision and learns
    from rewards by policy gradient (REINFORCE).

    Paper: https://arxiv.org/abs/1611.01578

    The policy is a :class:`~optuna_nas.samplers.controllers.SequencePolicy` over the trial's
    define-by-run decisions (a decision first met gets its own softmax head), so variable-length
    architectures (``ChainSpace``'s depth) work. Learning, in trial-number order over the finished
    trials (every process rebuilds the same weights from storage):

    * every ``batch_size`` new architectures (Zoph & Le's ``m``), one Adam step on the mean of
      ``-advantage * log p(architecture) - entropy_weight * entropy`` over them;
    * the advantage is, by default, the reward's centred rank among every reward seen so far
      (``advantage="rank"``), or ``reward - baseline`` with the baseline an exponential moving
      average of the rewards (``advantage="baseline"``, Zoph & Le; started at the first reward and
      updated before each advantage is taken, as ENAS does);
    * after each such step, with ``self_imitation=k`` (self-imitation learning, Oh et al. 2018,
      https://arxiv.org/abs/1806.05635), one more step on the ``k`` best architectures seen so far,
      each with its advantage clipped at 0: the controller is pulled towards the best it found and
      never pushed away from it;
    * with ``replay > 0``, after each new architecture but the first, one more step on that many
      stored (architecture, reward) pairs drawn from all those seen so far (the seeds take 10);
    * a step whose gradient or result is not finite (a learning rate far too large) is skipped;
    * ``probability_floor`` (0.05, as in the seeds) is added to each softmax output before
      renormalising, so the controller keeps exploring.

    The defaults (Adam at 0.03, batches of 8, rank advantage, self-imitation of the 4 best, no
    replay) were chosen on the NAS-Bench-201 table's validation accuracy at a budget of 100 trials
    (``benchmarks/RESULTS.md``): there, replaying stored pairs and the moving-average baseline both
    did worse, and self-imitation did better on all three datasets. Zoph & Le's controller is
    ``ReinforceSampler(self_imitation=0, advantage="baseline")``; the seeds' variant is
    ``ReinforceSampler(batch_size=1, replay=10, self_imitation=0, advantage="baseline")``.

    With several objectives the reward is :func:`~optuna_nas.samplers.rewards.dominance` unless
    ``reward`` says otherwise; the seeds' ``accuracy - l1 * params - l2 * FLOPs`` is
    ``rewards.linear([1, l1, l2])`` (signs follow the directions: see :mod:`~optuna_nas.samplers.rewards`).
    Pruned, failed and constraint-violating trials, duplicates and parallel workers are handled by
    :class:`~optuna_nas.samplers.NASSampler`.

    Args:
        learning_rate: Adam's step size. Zoph & Le use 0.0006 for 12,800 architectures; the default
            suits budgets of about 100 architectures.
        batch_size: Architectures per policy-gradient step (Zoph & Le's ``m``).
        baseline_decay: Decay of the reward's moving average.
        entropy_weight: Weight of the entropy bonus.
        probability_floor: Added to each action's probability before renormalising.
        replay: Stored (architecture, reward) pairs in the extra step after each architecture.
        self_imitation: The best architectures so far in the extra step after each batch step (0:
            none).
        advantage: ``"baseline"``: ``reward - baseline`` (Zoph & Le); ``"rank"``: the reward's
            centred rank among every reward seen so far, in ``[-0.5, 0.5]`` (fitness shaping, as in
            natural evolution strategies): blind to the rewards' scale, so one broken network
            with accuracy 0.1 does not outweigh the differences among the good ones.
        hidden_size: Width of the LSTM.
        temperature: Logits are divided by it.
        tanh_constant: If set, logits become ``tanh_constant * tanh(logits)``.
        seed, reward, pruned, float_bins, avoid_duplicates, dedup_key: As for
            :class:`~optuna_nas.samplers.NASSampler`.

    Raises:
        ValueError: An argument is out of range; the message names it.

    Example:
        >>> import optuna
        >>> from optuna_nas import objectives, samplers
        >>> objective = objectives.NASBench201(objectives.DEFAULT_TABLE, "cifar10")
        >>> sampler = samplers.ReinforceSampler(seed=0)
        >>> study = optuna.create_study(directions=objective.directions, sampler=sampler)
        >>> study.optimize(objective, n_trials=5)
        >>> len({t.user_attrs["arch"] for t in study.trials})  # no cell evaluated twice
        5
    """

    def __init__(
        self,
        *,
        learning_rate: float = 0.03,
        batch_size: int = 8,
        baseline_decay: float = 0.9,
        entropy_weight: float = 1e-4,
        probability_floor: float = 0.05,
        replay: int = 0,
        self_imitation: int = 4,
        advantage: str = "rank",
        hidden_size: int = 32,
        temperature: float = 1.0,
        tanh_constant: float | None = None,
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
        self._adam = Adam(check_number("learning_rate", learning_rate, low=0.0, low_open=True))
        self._batch_size = check_int("batch_size", batch_size, minimum=1)
        if self._batch_size > MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be at most {MAX_BATCH_SIZE} architectures, got {batch_size!r}.")
        self._baseline_decay = check_number("baseline_decay", baseline_decay, low=0.0, high=1.0, high_open=True)
        self._entropy_weight = check_number("entropy_weight", entropy_weight, low=0.0)
        self._replay = check_int("replay", replay, minimum=0)
        if self._replay > MAX_REPLAY:
            raise ValueError(f"replay must be at most {MAX_REPLAY} pairs per step, got {replay!r}.")
        self._self_imitation = check_int("self_imitation", self_imitation, minimum=0)
        if self._self_imitation > MAX_REPLAY:
            raise ValueError(f"self_imitation must be at most {MAX_REPLAY} architectures, got {self_imitation!r}.")
        self._advantage = check_one_of("advantage", advantage, ADVANTAGES)
        self._policy = SequencePolicy(
            hidden_size=hidden_size,
            temperature=temperature,
            tanh_constant=tanh_constant,
            probability_floor=probability_floor,
            seed=self.seed,
        )

    _CACHES = (*NASSampler._CACHES, "_carry_lock", "_carries")

    def _init_caches(self) -> None:
        super()._init_caches()
        self._carry_lock = threading.Lock()
        self._carries: dict[tuple[int, int], tuple[tuple[Step, ...], str, Carry, Any]] = {}

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Any) -> None:
        with self._carry_lock:
            self._carries.pop((id(study._storage), trial._trial_id), None)
        super().after_trial(study, trial, state, values)

    @property
    def policy(self) -> SequencePolicy:
        """The controller's policy (its settings; the weights are in :meth:`learned_state`)."""
        return self._policy

    def steps_of(self, params: Mapping[str, Any], distributions: Mapping[str, BaseDistribution]) -> list[Step]:
        """``params`` as the policy's steps: ``(decision key, action)`` for every decision of more than one action."""
        steps = []
        for name, value in params.items():
            actions = self.actions(distributions[name])
            if actions.size > 1:
                steps.append((decision_key(name, actions.size), actions.action_of(value)))
        return steps

    def sequence_probability(
        self, study: optuna.Study, params: Mapping[str, Any], distributions: Mapping[str, BaseDistribution]
    ) -> float:
        """The probability that the controller, as learned from every finished trial of ``study``,
        writes ``params`` (before duplicate avoidance).
        """
        state = self.learned_state(study)
        return self._policy.sequence_probability(state["parameters"], self.steps_of(params, distributions))

    # -- Learning -------------------------------------------------------------------------------

    def initial_state(self) -> dict[str, Any]:
        return {
            "parameters": self._policy.initial_parameters(),
            "moments": {},
            "baseline": None,
            "memory": [],
            "batch": [],
        }

    def copy_state(self, state: dict[str, Any]) -> dict[str, Any]:
        # Tensors are replaced, never changed in place (Adam.step), and stored pairs never change:
        # copying the containers is enough.
        return {
            "parameters": dict(state["parameters"]),
            "moments": dict(state["moments"]),
            "baseline": state["baseline"],
            "memory": list(state["memory"]),
            "batch": list(state["batch"]),
        }

    def learn(self, state: dict[str, Any], episode: Episode) -> dict[str, Any]:
        if episode.reward is None:
            return state
        steps = tuple(self.steps_of(episode.params, episode.distributions))
        if not steps:
            return state
        self._policy.add_points(state["parameters"], sorted({key for key, _ in steps}))
        if state["baseline"] is None:
            state["baseline"] = episode.reward  # the moving average starts at the first reward
        state["memory"].append((steps, episode.reward))
        state["batch"].append((steps, episode.reward))
        if len(state["batch"]) >= self._batch_size:
            pairs = []
            for batch_steps, reward in state["batch"]:
                state["baseline"] = self._baseline_decay * state["baseline"] + (1 - self._baseline_decay) * reward
                pairs.append((batch_steps, self._advantage_of(state, reward)))
            self._step(state, pairs)
            state["batch"] = []
            if self._self_imitation:
                best = sorted(state["memory"], key=lambda pair: -pair[1])[: self._self_imitation]
                imitated = [(best_steps, max(self._advantage_of(state, reward), 0.0)) for best_steps, reward in best]
                self._step(state, imitated)
        if self._replay > 0 and len(state["memory"]) > 1:
            rng = self.rng(episode.number, "replay")
            memory = state["memory"]
            drawn = [memory[int(i)] for i in rng.integers(0, len(memory), size=self._replay)]
            self._step(state, [(drawn_steps, self._advantage_of(state, reward)) for drawn_steps, reward in drawn])
        return state

    def _advantage_of(self, state: dict[str, Any], reward: float) -> float:
        if self._advantage == "baseline":
            return float(reward - state["baseline"])
        rewards_seen = [seen for _, seen in state["memory"]]
        below = sum(seen < reward for seen in rewards_seen) + 0.5 * sum(seen == reward for seen in rewards_seen)
        return float(below / len(rewards_seen) - 0.5)

    def _step(self, state: dict[str, Any], pairs: list[tuple[tuple[Step, ...], float]]) -> None:
        """One Adam step on ``(steps, advantage)`` pairs."""
        import torch

        parameters = state["parameters"]
        used = {"lstm/weight_ih", "lstm/weight_hh", "lstm/bias", "start"}
        for steps, _ in pairs:
            for key, _ in steps:
                used.update(self._policy.point_shapes(key))
        names = sorted(used)
        leaves = {name: parameters[name].detach().requires_grad_(True) for name in names}
        loss = torch.zeros((), dtype=torch.float64)
        for steps, advantage in pairs:
            log_prob, entropy = self._policy.log_prob_and_entropy(leaves, steps)
            loss = loss - advantage * log_prob - self._entropy_weight * entropy
        loss = loss / len(pairs)
        # The embedding of a sequence's last action feeds nothing: it gets no gradient, and no step.
        gradients = torch.autograd.grad(loss, [leaves[name] for name in names], allow_unused=True)
        used_gradients = {name: g for name, g in zip(names, gradients, strict=True) if g is not None}
        # A step that would make the weights NaN or infinite (a huge learning rate) is skipped.
        if not all(bool(torch.isfinite(g).all()) for g in used_gradients.values()):
            return
        stepped, moments = dict(parameters), dict(state["moments"])
        self._adam.step(stepped, used_gradients, moments)
        if all(bool(torch.isfinite(stepped[name]).all()) for name in used_gradients):
            parameters.update(stepped)
            state["moments"].update(moments)

    # -- Proposing ------------------------------------------------------------------------------

    def propose(self, decision: Decision) -> int:
        import torch

        steps = tuple(self.steps_of(decision.params, decision.trial.distributions))
        key = decision_key(decision.name, decision.actions.size)
        parameters = decision.state["parameters"]
        # The LSTM's state at the trial's previous decision is kept, so a trial of n decisions costs
        # n LSTM steps, not n ** 2 / 2: once that decision's action is known, it becomes the input.
        cache_key = (id(decision.study._storage), decision.trial._trial_id)
        with self._carry_lock:
            cached = self._carries.get(cache_key)
        with torch.no_grad():
            carry: Carry | None = None
            if cached is not None:
                prefix, cached_key, stepped, embed = cached
                n = len(prefix)
                if len(steps) > n and steps[:n] == prefix and steps[n][0] == cached_key:
                    carry = self._policy.advance(
                        parameters, dataclasses.replace(stepped, inputs=embed[steps[n][1]]), steps[n + 1 :]
                    )
            if carry is None:
                carry = self._policy.advance(parameters, self._policy.start(parameters), steps)
            distribution, embed, stepped = self._policy.step(parameters, carry, key)
        with self._carry_lock:
            self._carries[cache_key] = (steps, key, stepped, embed)
            while len(self._carries) > _CARRIES_KEPT:
                self._carries.pop(next(iter(self._carries)))
        probabilities = distribution.tolist()
        weights = [float(probabilities[action]) for action in decision.allowed]
        total = sum(weights)
        threshold = decision.rng.random() * total
        for action, weight in zip(decision.allowed, weights, strict=True):
            threshold -= weight
            if threshold < 0:
                return action
        return decision.allowed[-1]


class ENASSampler(ReinforceSampler):
    """ENAS's controller (Pham et al. 2018): the REINFORCE controller with ENAS's settings.

    Paper: https://arxiv.org/abs/1802.03268

    Adam at 0.00035, logits through ``2.5 * tanh(logits / 5)``, entropy weight 0.0001, baseline
    decay 0.99, an LSTM of 64, no probability floor and no replay. Pair it with an objective whose
    rewards are cheap (shared weights): ENAS takes thousands of controller steps.

    Args:
        learning_rate, batch_size, baseline_decay, entropy_weight, probability_floor, replay,
            advantage, hidden_size, temperature, tanh_constant, seed, reward, pruned, float_bins,
            avoid_duplicates, dedup_key: As for :class:`ReinforceSampler`, with ENAS's defaults.
    """

    def __init__(
        self,
        *,
        learning_rate: float = 0.00035,
        batch_size: int = 1,
        baseline_decay: float = 0.99,
        entropy_weight: float = 1e-4,
        probability_floor: float = 0.0,
        replay: int = 0,
        advantage: str = "baseline",
        hidden_size: int = 64,
        temperature: float = 5.0,
        tanh_constant: float | None = 2.5,
        seed: int | None = None,
        reward: rewards.RewardFunction | None = None,
        pruned: str = "last_value",
        float_bins: int = 10,
        avoid_duplicates: bool = True,
        dedup_key: DedupKey | None = None,
    ) -> None:
        super().__init__(
            learning_rate=learning_rate,
            batch_size=batch_size,
            baseline_decay=baseline_decay,
            entropy_weight=entropy_weight,
            probability_floor=probability_floor,
            replay=replay,
            self_imitation=0,  # ENAS's controller learns from its children's rewards alone
            advantage=advantage,
            hidden_size=hidden_size,
            temperature=temperature,
            tanh_constant=tanh_constant,
            seed=seed,
            reward=reward,
            pruned=pruned,
            float_bins=float_bins,
            avoid_duplicates=avoid_duplicates,
            dedup_key=dedup_key,
        )


register_sampler("reinforce", lambda *, seed, **options: ReinforceSampler(seed=seed, **options))
register_sampler("enas", lambda *, seed, **options: ENASSampler(seed=seed, **options))
