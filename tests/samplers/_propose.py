"""Run in a fresh process: resume a study from storage and print the next proposal as JSON.

python _propose.py SAMPLER STORAGE_URL STUDY_NAME SEED [N_TRIALS]
"""

from __future__ import annotations

import json
import sys

import optuna
from _helpers import NB201
from _helpers import nb201_score

from optuna_nas.predictors import TreeEnsemble
from optuna_nas.samplers import create_sampler

SMALL = {
    "metaqnn": {"epsilon_schedule": ((1.0, 10), (0.3, 10), (0.1, 1)), "replay": 20},
    "evolution": {"population_size": 8, "sample_size": 4},
    "reinforce": {"replay": 4, "hidden_size": 8},
    "pnas": {"space": NB201, "beam_size": 4, "predictor": TreeEnsemble(n_estimators=10, seed=0)},
    "evolution-guided": {
        "population_size": 8,
        "sample_size": 4,
        "space": NB201,
        "candidates": 10,
        "min_trials": 6,
        "predictor": TreeEnsemble(n_estimators=10, seed=0),
    },
}


def main() -> None:
    name, storage, study_name, seed = sys.argv[1:5]
    n_trials = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = create_sampler(name, seed=int(seed), **SMALL[name])
    study = optuna.create_study(
        storage=storage, study_name=study_name, sampler=sampler, direction="maximize", load_if_exists=True
    )
    if n_trials:
        study.optimize(nb201_score, n_trials=n_trials)
    trial = study.ask()
    nb201_score(trial)
    print(
        json.dumps({"number": trial.number, "params": trial.params, "history": [t.params for t in study.trials[:-1]]})
    )


if __name__ == "__main__":
    main()
