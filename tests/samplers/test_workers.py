"""Many workers on one study: no architecture trained twice, and every worker learns what a rebuild
from storage learns."""

import json
import os
import subprocess
import sys

import optuna
import pytest
from _helpers import CountingMetaQNN
from _helpers import nb201_score
from _helpers import trained_architectures
from _propose import SMALL
from _workers import learned_summary
from _workers import paused_nb201
from optuna.trial import TrialState

from optuna_nas.samplers import create_sampler

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLERS = ["metaqnn", "evolution", "reinforce", "evolution-guided", "pnas"]


def _yielded(study):
    return [t for t in study.trials if "optuna_nas:duplicate_of" in t.system_attrs]


def _assert_lineage(study):
    """Every child's parent finished before it, and is the child minus its mutation (and the
    decisions recorded as unplanned)."""
    for child in study.trials:
        parent_number = child.system_attrs.get("AgingEvolutionSampler:parent")
        if parent_number is None:
            continue
        parent = study.trials[parent_number]
        assert parent.number < child.number and parent.state == TrialState.COMPLETE
        changed = {k for k in child.params if child.params[k] != parent.params.get(k)}
        mutation = child.system_attrs["AgingEvolutionSampler:mutation"]
        unplanned = set(child.system_attrs.get("AgingEvolutionSampler:unplanned", []))
        # One mutation; a decision leaves the plan only where another worker took the planned child.
        assert mutation in changed and changed <= {mutation} | unplanned


@pytest.mark.parametrize("name", SAMPLERS)
def test_four_threads_never_train_one_architecture_twice(name):
    sampler = create_sampler(name, seed=0, **SMALL[name])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(paused_nb201, n_trials=60, n_jobs=4)
    architectures = trained_architectures(study)
    assert len(architectures) + len(_yielded(study)) == 60 and len(architectures) >= 55
    if name == "evolution":
        assert sum("AgingEvolutionSampler:parent" in t.system_attrs for t in study.trials) > 30
        _assert_lineage(study)
    fresh = create_sampler(name, seed=0, **SMALL[name])
    assert learned_summary(sampler, study) == learned_summary(fresh, study)


@pytest.mark.parametrize("name", SAMPLERS)
def test_four_processes_on_sqlite_never_train_one_architecture_twice(name, tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    optuna.create_study(storage=url, study_name="s", direction="maximize")
    outs = [tmp_path / f"state-{i}.json" for i in range(4)]
    workers = [
        subprocess.Popen(
            [sys.executable, os.path.join(HERE, "_workers.py"), name, url, "s", "12", "48", str(out)], cwd=HERE
        )
        for out in outs
    ]
    assert [w.wait(timeout=300) for w in workers] == [0, 0, 0, 0]
    study = optuna.load_study(storage=url, study_name="s")
    architectures = trained_architectures(study)
    assert len(architectures) + len(_yielded(study)) == 48 and len(architectures) >= 42
    if name == "evolution":
        _assert_lineage(study)
    # Each worker's cached state, extended as trials finished in whatever order, is the rebuild's.
    rebuilt = learned_summary(create_sampler(name, seed=5, **SMALL[name]), study)
    for out in outs:
        assert json.loads(out.read_text()) == json.loads(json.dumps(rebuilt))


def test_threads_learn_each_trial_about_once():
    sampler = CountingMetaQNN(seed=0, **SMALL["metaqnn"])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=300, n_jobs=4)
    # One learn call per finished trial, plus replays after out-of-order finishes: O(trials).
    assert sampler.learn_calls <= 4 * 300


def test_learning_is_linear_in_the_trials_of_one_worker():
    sampler = CountingMetaQNN(seed=0, **SMALL["metaqnn"])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=200)
    assert sampler.learn_calls == 199
