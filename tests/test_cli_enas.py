"""``optuna-nas search --sampler enas`` and ``optuna-nas derive`` on a tiny cell space."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import optuna
import pytest

from optuna_nas import samplers
from optuna_nas import spaces
from optuna_nas.cli import main
from optuna_nas.cli._common import CONFIG_ATTR
from optuna_nas.objectives import OWNER_KEY
from optuna_nas.objectives._shared_weights import WEIGHTS_KEY

TINY_ENAS = [
    "--sampler",
    "enas",
    "--dataset",
    "digits",
    "--space",
    "cell",
    "--max-blocks",
    "1",
    "--channels",
    "4",
    "--batches-per-trial",
    "2",
    "--batch-size",
    "32",
    "--no-mlflow",
    "--no-progress",
]


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("optuna-nas: error: ") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err
    return err


def test_enas_is_a_registered_sampler():
    sampler = samplers.create_sampler("enas", seed=0)
    assert isinstance(sampler, samplers.ENASSampler)


def test_search_then_derive_and_a_second_owner_is_refused(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study_args = ["--storage", url, "--study-name", "e"]
    artifacts = ["--artifact-dir", str(tmp_path / "artifacts")]
    assert main(["search", *study_args, *artifacts, *TINY_ENAS, "--n-trials", "3"]) == 0
    assert "3 trials, Pareto front of" in capsys.readouterr().out

    study = optuna.load_study(storage=url, study_name="e")
    config = json.loads(study.user_attrs[CONFIG_ATTR])
    assert config["sampler"] == "enas" and config["batches_per_trial"] == 2
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    system_attrs = study._storage.get_study_system_attrs(study._study_id)
    assert not system_attrs.get(OWNER_KEY) and system_attrs[WEIGHTS_KEY]["trials"] == 3  # released, saved

    out_file = tmp_path / "spec.json"
    assert main(["derive", *study_args, "--n", "5", "--out", str(out_file)]) == 0
    out = capsys.readouterr().out
    assert "accuracy under the shared weights:" in out and "enqueue_trial" in out
    spec = spaces.spec_from_dict(json.loads(out_file.read_text()))
    decisions = json.loads(out.split("decisions: ", 1)[1].splitlines()[0])
    assert spaces.CellSpace(max_blocks=1, channels=4).spec_from_params(decisions) == spec

    # A live owner elsewhere: another process still trains the study's weights.
    owner = {"token": "elsewhere", "host": "other-host", "pid": 4242, "since": "2026-01-01T00:00:00+00:00"}
    study._storage.set_study_system_attr(study._study_id, OWNER_KEY, owner)
    assert main(["search", *study_args, *artifacts, *TINY_ENAS, "--n-trials", "1"]) == 2
    _one_line_error(capsys, "4242", "other-host", "--take-over")
    assert main(["worker", *study_args, "--n-trials", "1", "--no-mlflow", "--no-progress"]) == 2
    _one_line_error(capsys, "4242")
    assert main(["derive", *study_args, "--n", "5"]) == 2
    _one_line_error(capsys, "4242", "--take-over")
    assert len(optuna.load_study(storage=url, study_name="e").trials) == 3  # no trial ran or failed

    # That process is gone: take the study over, from the saved weights, and release it again.
    assert main(["search", *study_args, *artifacts, *TINY_ENAS, "--n-trials", "1", "--take-over"]) == 0
    capsys.readouterr()
    system_attrs = study._storage.get_study_system_attrs(study._study_id)
    assert not system_attrs.get(OWNER_KEY) and system_attrs[WEIGHTS_KEY]["trials"] == 4

    # Resuming with another sampler would train no shared weights.
    assert main(["search", *study_args, *artifacts, *TINY_ENAS[2:], "--sampler", "random"]) == 2
    _one_line_error(capsys, "--sampler random", "enas")


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--space", "dag"], ["--space dag", "cell or chain"]),
        (["--space", "nb201"], ["--space nb201"]),
        (["--benchmark", "nasbench201", "--dataset", "cifar10"], ["--benchmark nasbench201"]),
        (["--artifact-dir", ""], ["--artifact-dir"]),
        (["--batches-per-trial", "0"], ["--batches-per-trial must be an integer >= 1, got 0"]),
    ],
)
def test_search_refuses_what_enas_does_not_take(tmp_path, capsys, extra, words):
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    argv = ["search", "--storage", url, "--sampler", "enas", "--no-mlflow", "--no-progress"]
    assert main([*argv, "--artifact-dir", str(tmp_path / "a"), *extra]) == 2
    _one_line_error(capsys, *words)


def test_derive_refuses_a_study_not_searched_with_enas(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = optuna.create_study(storage=url, study_name="m")
    study.set_user_attr(CONFIG_ATTR, json.dumps({"sampler": "metaqnn", "space": "chain"}))
    assert main(["derive", "--storage", url, "--study-name", "m"]) == 2
    _one_line_error(capsys, "--sampler metaqnn", "--sampler enas")
    assert main(["derive", "--storage", url, "--study-name", "m", "--n", "0"]) == 2
    _one_line_error(capsys, "--n must be >= 1, got 0")


def test_enas_chain_is_saved_with_skip_connections(tmp_path):
    from optuna_nas.cli import build_parser
    from optuna_nas.cli._build import make_space
    from optuna_nas.cli._search import _config

    argv = ["search", "--sampler", "enas", "--space", "chain", "--no-mlflow", "--artifact-dir", str(tmp_path / "a")]
    config = _config(build_parser().parse_args(argv))
    assert config["skip_connections"] is True and config["batches_per_trial"] == 20
    assert make_space({**config, "input_shape": [1, 8, 8]}).skip_connections is True
    config = _config(build_parser().parse_args([*argv[:2], "metaqnn", *argv[3:]]))
    assert config["skip_connections"] is False


def test_sigterm_releases_the_study_and_saves_the_weights_a_worker_resumes_from(tmp_path):
    db = tmp_path / "nas.db"
    url = f"sqlite:///{db}"
    script = os.path.join(os.path.dirname(sys.executable), "optuna-nas")
    command = [script, "search", "--storage", url, "--study-name", "e", "--artifact-dir", str(tmp_path / "a")]
    search = subprocess.Popen([*command, *TINY_ENAS, "--n-trials", "100000"], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while True:  # wait for three finished trials, read with sqlite3: the search may be creating the schema
        assert search.poll() is None and time.monotonic() < deadline
        try:
            with sqlite3.connect(db, timeout=30) as connection:
                done = connection.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
        except sqlite3.OperationalError:  # no table yet
            done = 0
        if done >= 3:
            break
        time.sleep(0.2)
    search.send_signal(signal.SIGTERM)
    _, err = search.communicate(timeout=120)
    assert search.returncode == 143, err
    study = optuna.load_study(storage=url, study_name="e")
    system_attrs = study._storage.get_study_system_attrs(study._study_id)
    finished = [t for t in study.trials if t.state.is_finished()]
    complete = [t for t in finished if t.state == optuna.trial.TrialState.COMPLETE]
    # Released, and the weights saved after every trial that trained them (the one stopped included).
    assert not system_attrs.get(OWNER_KEY)
    assert system_attrs[WEIGHTS_KEY]["trials"] >= len(complete) >= 3
    assert all(t.state != optuna.trial.TrialState.RUNNING for t in study.trials)
    # A worker takes the study over without --take-over, and goes on from the saved weights.
    saved = system_attrs[WEIGHTS_KEY]["trials"]
    assert (
        main(["worker", "--storage", url, "--study-name", "e", "--n-trials", "1", "--no-mlflow", "--no-progress"]) == 0
    )
    after = study._storage.get_study_system_attrs(study._study_id)
    assert not after.get(OWNER_KEY) and after[WEIGHTS_KEY]["trials"] == saved + 1
