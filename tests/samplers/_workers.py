"""Objectives and a worker process for the many-workers tests.

    python _workers.py SAMPLER STORAGE_URL STUDY_NAME N_TRIALS TOTAL OUT_JSON

runs ``N_TRIALS`` trials of :func:`paused_nb201` on the study, waits until the study holds ``TOTAL``
finished trials, and writes the sampler's learned state (the cached one, extended as trials
finished in whatever order) to ``OUT_JSON``.
"""

from __future__ import annotations

import json
import sys
import time

import optuna
from _helpers import NB201
from _helpers import SCORES
from _propose import SMALL

from optuna_nas.samplers import create_sampler

PAUSE_SECONDS = 0.02


def paused_nb201(trial: optuna.Trial) -> float:
    """The tabular stand-in, with a pause after the decisions, as training would take."""
    spec = NB201.suggest(trial)
    time.sleep(PAUSE_SECONDS)
    return sum(SCORES[op] for op in spec.ops) + 0.01 * spec.ops.index(spec.ops[-1])


def learned_summary(sampler, study) -> object:
    """The learned state in JSON-comparable form (Q-table, the population's trial numbers, or the
    controller's weights, bit for bit, with its baseline)."""
    if name_of(sampler) == "metaqnn":
        return sampler.q_table(study)
    if name_of(sampler) == "reinforce":
        state = sampler.learned_state(study)
        weights = {name: value.numpy().tobytes().hex() for name, value in state["parameters"].items()}
        return {"weights": weights, "baseline": state["baseline"], "memory": len(state["memory"])}
    if name_of(sampler) == "pnas":
        return [number for number, _, _, _ in sampler.learned_state(study)]
    if name_of(sampler) == "evolution-guided":
        state = sampler.learned_state(study)
        return {"population": [m.number for m in state.base], "examples": [n for n, _, _ in state.examples]}
    return [member.number for member in sampler.population(study)]


def name_of(sampler) -> str:
    names = {"MetaQNNSampler": "metaqnn", "ReinforceSampler": "reinforce", "PredictorGuidedSampler": "evolution-guided"}
    names["PNASSampler"] = "pnas"
    return names.get(type(sampler).__name__, "evolution")


def main() -> None:
    name, url, study_name, n_trials, total, out = sys.argv[1:7]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = create_sampler(name, seed=5, **SMALL[name])
    study = optuna.load_study(storage=url, study_name=study_name, sampler=sampler)
    study.optimize(paused_nb201, n_trials=int(n_trials))
    deadline = time.monotonic() + 120
    finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    while len(study.get_trials(deepcopy=False, states=finished)) < int(total):
        if time.monotonic() > deadline:
            raise TimeoutError("the other workers did not finish")
        time.sleep(0.05)
    with open(out, "w") as f:
        json.dump(learned_summary(sampler, study), f)


if __name__ == "__main__":
    main()
