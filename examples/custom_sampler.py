"""Write a NAS controller of your own on the public sampler base, and run it.

``BanditSampler`` treats every decision as a multi-armed bandit: it keeps, per (decision, action),
the sum and count of the rewards of the finished trials that took it, and picks the best mean with
probability ``1 - epsilon`` (untried actions first), else any action. The base does the rest: the
state is rebuilt from storage in trial-number order, randomness comes from (seed, trial, decision),
rewards of pruned, failed and constraint-violating trials are settled, and architectures evaluated
or running elsewhere are not proposed again.

    python examples/custom_sampler.py
"""

from __future__ import annotations

import optuna

from optuna_nas import samplers
from optuna_nas import spaces


class BanditSampler(samplers.NASSampler):
    """Epsilon-greedy bandit per decision, on the project's sampler base."""

    def __init__(self, *, epsilon: float = 0.2, **base_options):
        super().__init__(**base_options)
        self.epsilon = epsilon

    def initial_state(self):
        return {}  # "name|action" -> [reward sum, count]

    def copy_state(self, state):
        return {key: list(value) for key, value in state.items()}

    def learn(self, state, episode):
        if episode.reward is not None:
            for name, value in episode.params.items():
                key = f"{name}|{self.actions(episode.distributions[name]).action_of(value)}"
                total = state.setdefault(key, [0.0, 0])
                total[0] += episode.reward
                total[1] += 1
        return state

    def propose(self, decision):
        if decision.rng.random() < self.epsilon:
            return decision.random_action()

        def mean(action):
            total, count = decision.state.get(f"{decision.name}|{action}", (0.0, 0))
            return float("inf") if count == 0 else total / count

        best = max(mean(action) for action in decision.allowed)
        return decision.random_action([a for a in decision.allowed if mean(a) == best])


def main() -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space = spaces.NASBench201Space()
    convs = {"nor_conv_3x3": 3.0, "nor_conv_1x1": 2.0, "skip_connect": 1.0, "avg_pool_3x3": 0.5, "none": 0.0}
    study = optuna.create_study(direction="maximize", sampler=BanditSampler(seed=0))
    study.optimize(lambda trial: sum(convs[op] for op in space.suggest(trial).ops), n_trials=60)
    best = space.spec_from_params(study.best_params)
    print(f"best cell after 60 trials: {best.arch_str} (score {study.best_value})")


if __name__ == "__main__":
    main()
