"""What every sampler of the project keeps: storage is the truth, per-trial randomness, rewards."""

import json
import math
import os
import shutil
import subprocess
import sys
import uuid

import optuna
import pytest
from _helpers import nb201_score
from _helpers import trained_architectures
from _propose import SMALL
from optuna.trial import TrialState

from optuna_nas.samplers import create_sampler
from optuna_nas.samplers import rewards
from optuna_nas.samplers._history import episodes

HERE = os.path.dirname(os.path.abspath(__file__))
SAMPLERS = ["metaqnn", "evolution", "reinforce", "evolution-guided"]


def _propose_in_new_process(*args, hash_seed="0"):
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    out = subprocess.run(
        [sys.executable, os.path.join(HERE, "_propose.py"), *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
        check=True,
    )
    return json.loads(out.stdout)


@pytest.mark.parametrize("name", SAMPLERS)
def test_same_seed_same_proposals(name):
    runs = []
    for _ in range(2):
        study = optuna.create_study(direction="maximize", sampler=create_sampler(name, seed=7, **SMALL[name]))
        study.optimize(nb201_score, n_trials=25)
        runs.append([t.params for t in study.trials])
    assert runs[0] == runs[1]
    other = optuna.create_study(direction="maximize", sampler=create_sampler(name, seed=8, **SMALL[name]))
    other.optimize(nb201_score, n_trials=25)
    assert [t.params for t in other.trials] != runs[0]


@pytest.mark.parametrize("name", SAMPLERS)
def test_same_proposals_in_spawned_processes_with_other_hash_seeds(name, tmp_path):
    results = []
    for hash_seed in ("1", "12345"):
        url = f"sqlite:///{tmp_path / f'{hash_seed}.db'}"
        results.append(_propose_in_new_process(name, url, "s", 3, 20, hash_seed=hash_seed))
    assert results[0] == results[1]


@pytest.mark.parametrize("name", SAMPLERS)
def test_fresh_sampler_on_storage_proposes_what_the_original_would(name, tmp_path):
    db = tmp_path / "original.db"
    url = f"sqlite:///{db}"
    original = create_sampler(name, seed=11, **SMALL[name])
    study = optuna.create_study(storage=url, study_name="s", direction="maximize", sampler=original)
    study.optimize(nb201_score, n_trials=30)
    shutil.copy(db, tmp_path / "copy.db")

    trial = study.ask()
    nb201_score(trial)
    fresh = _propose_in_new_process(name, f"sqlite:///{tmp_path / 'copy.db'}", "s", 11)
    assert fresh["number"] == trial.number == 30
    assert fresh["params"] == trial.params


@pytest.mark.parametrize("name", SAMPLERS)
def test_threads_share_one_sampler(name):
    study = optuna.create_study(direction="maximize", sampler=create_sampler(name, seed=0, **SMALL[name]))
    study.optimize(nb201_score, n_trials=40, n_jobs=2)
    assert len(study.trials) == 40
    assert len(trained_architectures(study)) >= 36


def _postgres_url():
    url = os.environ.get("OPTUNA_NAS_TEST_POSTGRES_URL")
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("OPTUNA_NAS_TEST_POSTGRES_URL is not set: .ci/run starts PostgreSQL and sets it")
        pytest.skip("no PostgreSQL server: set OPTUNA_NAS_TEST_POSTGRES_URL")
    return url


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("storage", ["sqlite", "journal", "postgresql"])
def test_several_processes_on_one_storage(name, storage, tmp_path):
    if storage == "journal":
        url = str(tmp_path / "journal.log")
    else:
        url = _postgres_url() if storage == "postgresql" else f"sqlite:///{tmp_path / 'shared.db'}"
        study_name = f"s-{name}-{uuid.uuid4().hex[:8]}"
        optuna.create_study(storage=url, study_name=study_name, direction="maximize")
    code = (
        "import optuna, sys; sys.path.insert(0, sys.argv[1]);"
        "from _helpers import nb201_score, trained_architectures; from _propose import SMALL;"
        "from optuna_nas.samplers import create_sampler;"
        "optuna.logging.set_verbosity(optuna.logging.WARNING);"
        "url = sys.argv[2];"
        "storage = url if '://' in url else optuna.storages.JournalStorage("
        "optuna.storages.journal.JournalFileBackend(url));"
        "study = optuna.create_study(storage=storage, study_name=sys.argv[4], direction='maximize',"
        f"load_if_exists=True, sampler=create_sampler('{name}', seed=int(sys.argv[3]), **SMALL['{name}']));"
        "study.optimize(nb201_score, n_trials=15)"
    )
    if storage == "journal":
        study_name = "s"
    workers = [subprocess.Popen([sys.executable, "-c", code, HERE, url, str(seed), study_name]) for seed in (0, 1)]
    assert [w.wait(timeout=300) for w in workers] == [0, 0]
    if storage == "journal":
        url = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))
    study = optuna.load_study(storage=url, study_name=study_name)
    assert len(study.trials) == 30
    assert len(trained_architectures(study)) >= 25


@pytest.mark.parametrize("name", SAMPLERS)
def test_no_architecture_is_evaluated_twice_while_unseen_ones_remain(name):
    def tiny(trial):
        a = trial.suggest_categorical("a", ["x", "y", "z"])
        b = trial.suggest_categorical("b", [1, 2, 3])
        return {"x": 1.0, "y": 2.0, "z": 3.0}[a] * b

    study = optuna.create_study(direction="maximize", sampler=create_sampler(name, seed=0, **SMALL[name]))
    study.optimize(tiny, n_trials=9)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 9


@pytest.mark.parametrize("name", SAMPLERS)
def test_failed_and_pruned_trials_end_only_themselves(name):
    def sometimes_bad(trial):
        value = nb201_score(trial)
        if trial.number % 5 == 1:
            raise optuna.TrialPruned()
        if trial.number % 5 == 2:
            return float("nan")
        return value

    study = optuna.create_study(direction="maximize", sampler=create_sampler(name, seed=0, **SMALL[name]))
    study.optimize(sometimes_bad, n_trials=30)
    states = [t.state for t in study.trials]
    assert states.count(TrialState.PRUNED) == 6 and states.count(TrialState.FAIL) == 6
    assert states.count(TrialState.COMPLETE) == 18


def test_rewards():
    maximize, minimize = optuna.study.StudyDirection.MAXIMIZE, optuna.study.StudyDirection.MINIMIZE
    directions = [maximize, minimize, minimize]
    assert rewards.first_objective([0.9, 10, 20], directions) == 0.9
    assert rewards.first_objective([3.0], [minimize]) == -3.0
    assert rewards.linear([1.0, 0.01, 0.001])([0.9, 10, 20], directions) == pytest.approx(0.9 - 0.1 - 0.02)
    mnas = rewards.mnas(100.0)
    assert mnas([0.8, 5, 100.0], directions) == pytest.approx(0.8)
    assert mnas([0.8, 5, 200.0], directions) == pytest.approx(0.8 * 2**-0.07)
    with pytest.raises(ValueError, match="weights"):
        rewards.linear([1.0, -1.0])
    with pytest.raises(ValueError, match="target"):
        rewards.mnas(0)


def test_pruned_trials_are_rewarded_as_documented():
    study = optuna.create_study(direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    study.add_trial(optuna.create_trial(params={"x": 0.1}, distributions=dist, value=0.7))
    study.add_trial(optuna.create_trial(params={"x": 0.2}, distributions=dist, value=0.4))
    study.add_trial(
        optuna.create_trial(
            params={"x": 0.3}, distributions=dist, state=TrialState.PRUNED, intermediate_values={1: 0.2, 2: 0.25}
        )
    )
    study.add_trial(optuna.create_trial(params={"x": 0.4}, distributions=dist, state=TrialState.PRUNED))
    study.add_trial(optuna.create_trial(params={"x": 0.5}, distributions=dist, state=TrialState.FAIL))
    trials = study.trials
    last = [e.reward for e in episodes(trials, study.directions, rewards.first_objective, "last_value")]
    assert last == [0.7, 0.4, 0.25, 0.4, None]
    worst = [e.reward for e in episodes(trials, study.directions, rewards.first_objective, "worst")]
    assert worst == [0.7, 0.4, 0.4, 0.4, None]
    skip = [e.reward for e in episodes(trials, study.directions, rewards.first_objective, "skip")]
    assert skip == [0.7, 0.4, None, None, None]
    assert not math.isnan(last[0])


def test_unknown_sampler_lists_the_available_ones():
    with pytest.raises(ValueError, match=r"metaqnn.*evolution|evolution.*metaqnn"):
        create_sampler("bohb", seed=0)


@pytest.mark.parametrize("name", SAMPLERS)
def test_one_sampler_reused_on_a_second_study_keeps_nothing_from_the_first(name):
    shared = create_sampler(name, seed=4, **SMALL[name])
    first = optuna.create_study(direction="maximize", sampler=shared)
    first.optimize(nb201_score, n_trials=25)
    second = optuna.create_study(direction="maximize", sampler=shared)
    second.optimize(lambda t: -nb201_score(t), n_trials=25)
    fresh = optuna.create_study(direction="maximize", sampler=create_sampler(name, seed=4, **SMALL[name]))
    fresh.optimize(lambda t: -nb201_score(t), n_trials=25)
    assert [t.params for t in second.trials] == [t.params for t in fresh.trials]


@pytest.mark.parametrize(
    ("name", "kwargs", "match"),
    [
        ("metaqnn", {"replay": 10**9}, "replay must be at most"),
        ("evolution", {"sample_size": 10**10}, "sample_size must be at most"),
        ("evolution", {"population_size": 10**10}, "population_size must be at most"),
    ],
)
def test_sizes_that_would_hang_or_exhaust_memory_are_refused(name, kwargs, match):
    with pytest.raises(ValueError, match=match):
        create_sampler(name, seed=0, **kwargs)
