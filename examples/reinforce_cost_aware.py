"""Zoph & Le's cost-aware reward: the REINFORCE controller finds smaller networks at nearly the same accuracy.

Run:  python examples/reinforce_cost_aware.py [--seeds 5] [--budget 100]

The seeds' multi-objective reward is ``accuracy - l1 * params - l2 * FLOPs``: ``rewards.linear([1, l1,
l2])``. Here one million parameters cost 0.01 of accuracy, and so do 100 MFLOPs. Each seed runs the
controller twice on the NAS-Bench-201 table (accuracy from the table, params and FLOPs of the real
networks, so it takes seconds): once rewarded by accuracy alone, once by the linear reward. Each
run's answer is its trial with the highest reward; the script prints the answers' mean accuracy,
params and FLOPs.
"""

from __future__ import annotations

import argparse
import statistics

import optuna

from optuna_nas import objectives
from optuna_nas import samplers
from optuna_nas.samplers import rewards

L1_PER_PARAM = 0.01 / 1e6  # 0.01 accuracy per million parameters
L2_PER_FLOP = 0.01 / 1e8  # 0.01 accuracy per 100 MFLOPs


def answer(reward: rewards.RewardFunction, seed: int, budget: int) -> tuple[float, float, float]:
    """(accuracy, params, FLOPs) of the best trial by ``reward`` after ``budget`` trials."""
    objective = objectives.NASBench201(objectives.DEFAULT_TABLE, "cifar10", multi_objective=True)
    study = optuna.create_study(
        directions=objective.directions, sampler=samplers.ReinforceSampler(seed=seed, reward=reward)
    )
    study.optimize(objective, n_trials=budget)
    complete = [t for t in study.trials if t.values is not None]
    best = max(complete, key=lambda t: reward(t.values, study.directions))
    accuracy, params, flops = best.values
    return accuracy, params, flops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="runs per reward")
    parser.add_argument("--budget", type=int, default=100, help="trials per run")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for label, reward in [
        ("accuracy alone", rewards.first_objective),
        ("accuracy - l1 params - l2 FLOPs", rewards.linear([1.0, L1_PER_PARAM, L2_PER_FLOP])),
    ]:
        answers = [answer(reward, seed, args.budget) for seed in range(args.seeds)]
        accuracy, params, flops = (statistics.mean(column) for column in zip(*answers, strict=True))
        print(f"{label:32s} {100 * accuracy:6.2f} %  {params / 1e6:5.3f} M params  {flops / 1e6:7.1f} MFLOPs")


if __name__ == "__main__":
    main()
