"""Stop a search and resume it later, in another process: the sampler is rebuilt from storage.

Run:  python examples/resume_study.py   (run it twice: the second run goes on from the first)
"""

from __future__ import annotations

import optuna

from optuna_nas import objectives
from optuna_nas import samplers

STORAGE = "sqlite:///resume_example.db"

if __name__ == "__main__":
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    objective = objectives.NASBench201(objectives.DEFAULT_TABLE, "cifar100")
    # Same seed, same storage: the MetaQNN agent's Q-table is rebuilt from the finished trials,
    # so this process proposes exactly what the one that stopped would have.
    sampler = samplers.MetaQNNSampler(seed=0)
    study = optuna.create_study(
        study_name="resume-example", storage=STORAGE, direction="maximize", sampler=sampler, load_if_exists=True
    )
    before = len(study.trials)
    study.optimize(objective, n_trials=50)
    print(f"trials: {before} before this run, {len(study.trials)} now")
    print(f"best validation accuracy (12 epochs) {study.best_value:.4f}")
    print(f"Q-table states learned so far: {len(sampler.q_table(study))}")
