"""Our samplers in your own objective: any define-by-run code, not only the project's objectives.

Run:  python examples/optimize_in_user_code.py

The objective below asks for a NAS-Bench-201 cell plus a learning rate of its own and scores it
with the tabular benchmark; aging evolution mutates both, the float through its bins.
"""

from __future__ import annotations

import math

import optuna

from optuna_nas import objectives
from optuna_nas import samplers
from optuna_nas import spaces

table = objectives.NASBench201(objectives.DEFAULT_TABLE, "cifar10")
space = spaces.NASBench201Space()


def objective(trial: optuna.Trial) -> float:
    accuracy = table(trial)  # asks the six edges through this trial
    learning_rate = trial.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    # A made-up penalty so the float matters: the benchmark was trained near 0.1.
    return accuracy - 0.02 * abs(math.log10(learning_rate) + 1.0)


if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="maximize", sampler=samplers.AgingEvolutionSampler(seed=0))
    study.optimize(objective, n_trials=200)
    best = study.best_trial
    print(f"best of {len(study.trials)} trials: {best.value:.4f}")
    print(f"  cell {best.user_attrs['arch']}, learning rate {best.params['learning_rate']:.4f}")
