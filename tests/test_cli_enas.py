"""``optuna-nas search --sampler enas`` and ``optuna-nas derive`` on a tiny cell space."""

import json

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
        (["--batches-per-trial", "0"], ["--batches-per-trial must be >= 1, got 0"]),
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
