"""Resuming a study: ``search`` and ``worker`` check the settings it was searched with, and
``--force-settings`` changes them on the record.

The studies are scored from the NAS-Bench-201 table (instant trials), except where an option of
training is checked, on the tiny digits search.
"""

import json

import optuna
import pytest
from _search_args import TINY_SEARCH
from optuna.trial import TrialState

from optuna_nas.cli import main
from optuna_nas.cli._common import CONFIG_ATTR
from optuna_nas.cli._common import SETTINGS_CHANGES_ATTR
from optuna_nas.objectives import DEFAULT_TABLE

NB201 = ["--benchmark", "nasbench201", "--no-mlflow", "--no-progress"]


def _study_args(url, name="nb"):
    return ["--storage", url, "--study-name", name]


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert err.startswith("optuna-nas: error: ") and err.count("\n") == 1, err
    assert "Traceback" not in err
    for word in words:
        assert word in err, err
    return err


def _state(url, name="nb"):
    """Everything a run could have written to the study: attrs and trials."""
    study = optuna.load_study(storage=url, study_name=name)
    system_attrs = study._storage.get_study_system_attrs(study._study_id)
    return study.user_attrs, system_attrs, [(t.number, t.state, t.params) for t in study.trials]


@pytest.fixture
def nb201_study(tmp_path):
    """A metaqnn study of CIFAR-10 from the NAS-Bench-201 table, three objectives, 3 trials."""
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    argv = ["search", *_study_args(url), *NB201, "--dataset", "cifar10", "--sampler", "metaqnn", "--n-trials", "3"]
    assert main(argv) == 0
    return url, argv[:-2]


def _refused(capsys, url, argv, *words):
    before = _state(url)
    assert main(argv) == 2
    err = _one_line_error(capsys, *words)
    assert _state(url) == before  # nothing saved: no settings written, no trial created
    return err


def test_the_same_settings_resume_the_study(nb201_study, capsys):
    url, argv = nb201_study
    assert main([*argv, "--n-trials", "2"]) == 0
    study = optuna.load_study(storage=url, study_name="nb")
    assert len(study.trials) == 5 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert SETTINGS_CHANGES_ATTR not in study.user_attrs


def test_single_objective_on_a_three_objective_study_is_refused(nb201_study, capsys):
    url, argv = nb201_study
    for extra in ([], ["--force-settings"]):  # objectives cannot change, even when forced
        err = _refused(capsys, url, [*argv, "--single-objective", "--n-trials", "1", *extra], "--single-objective")
        assert "3 objectives (maximize accuracy, minimize params, minimize flops)" in err
        assert "this search 1 objective (maximize accuracy)" in err and "another --study-name" in err


def test_another_dataset_is_refused_naming_both(nb201_study, capsys):
    url, argv = nb201_study
    err = _refused(capsys, url, [*argv, "--dataset", "cifar100", "--n-trials", "1"])
    assert "--dataset 'cifar100': study 'nb' was searched with 'cifar10'; pass --force-settings" in err


def test_another_sampler_is_refused_naming_both(nb201_study, capsys):
    url, argv = nb201_study
    err = _refused(capsys, url, [*argv, "--sampler", "tpe", "--n-trials", "1"])
    assert "--sampler 'tpe': study 'nb' was searched with 'metaqnn'" in err


def test_training_on_a_benchmark_study_is_refused(nb201_study, capsys):
    url, argv = nb201_study
    argv = [a for a in argv if a not in ("--benchmark", "nasbench201")] + ["--dataset", "digits"]
    _refused(capsys, url, [*argv, "--space", "nb201", "--n-trials", "1"], "without --benchmark", "'nasbench201'")


def test_another_table_is_refused_and_a_copy_of_the_same_is_not(nb201_study, capsys, tmp_path):
    url, argv = nb201_study
    copy = tmp_path / "copy.csv"
    copy.write_bytes(open(DEFAULT_TABLE, "rb").read())
    assert main([*argv, "--table", str(copy), "--n-trials", "1"]) == 0
    lines = open(DEFAULT_TABLE).read().splitlines()
    other = tmp_path / "other.csv"
    other.write_text("\n".join([lines[0], *lines[1:][::-1]]) + "\n")
    _refused(capsys, url, [*argv, "--table", str(other), "--n-trials", "1"], f"--table '{other}'", DEFAULT_TABLE)


def test_options_that_do_not_apply_or_belong_to_the_process_are_not_compared(nb201_study):
    url, argv = nb201_study
    # Training options do not apply to a benchmark study; the seed is each process's own.
    assert main([*argv, "--epochs", "7", "--filters", "8", "--seed", "3", "--n-trials", "1"]) == 0
    config = json.loads(optuna.load_study(storage=url, study_name="nb").user_attrs[CONFIG_ATTR])
    assert config["epochs"] == 2 and config["seed"] == 0  # the study's settings are kept


def test_force_settings_changes_the_settings_and_records_the_change(nb201_study, capsys):
    url, argv = nb201_study
    assert main([*argv, "--dataset", "cifar100", "--sampler", "tpe", "--n-trials", "2", "--force-settings"]) == 0
    study = optuna.load_study(storage=url, study_name="nb")
    assert len(study.trials) == 5 and all(t.state == TrialState.COMPLETE for t in study.trials)
    config = json.loads(study.user_attrs[CONFIG_ATTR])
    assert (config["dataset"], config["sampler"]) == ("cifar100", "tpe")
    (record,) = study.user_attrs[SETTINGS_CHANGES_ATTR]
    assert record["command"] == "search" and record["at"]
    assert record["changes"] == {
        "dataset": {"saved": "cifar10", "given": "cifar100"},
        "sampler": {"saved": "metaqnn", "given": "tpe"},
    }
    capsys.readouterr()
    # The new settings are the study's now: the old ones are the mismatch, and a worker follows them.
    err = _refused(capsys, url, [*argv, "--n-trials", "1"])
    assert "--dataset 'cifar10': study 'nb' was searched with 'cifar100'" in err
    assert main(["worker", *_study_args(url), "--n-trials", "1", "--no-mlflow", "--no-progress"]) == 0
    assert len(optuna.load_study(storage=url, study_name="nb").trials) == 6


@pytest.mark.parametrize("extra", [[], ["--force-settings"], ["--single-objective"]])
def test_a_foreign_study_minimizing_is_refused(tmp_path, capsys, extra):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    optuna.create_study(storage=url, study_name="nb", direction="minimize")
    argv = ["search", *_study_args(url), *NB201, "--dataset", "cifar10", "--n-trials", "1", *extra]
    err = _refused(capsys, url, argv, "study 'nb' was not made by optuna-nas search", "1 objective (minimize)")
    assert "another --study-name" in err


def test_a_foreign_study_with_trials_needs_force_settings(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    study = optuna.create_study(storage=url, study_name="nb", directions=["maximize", "minimize", "minimize"])
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), 1.0, 1.0), n_trials=2)
    argv = ["search", *_study_args(url), *NB201, "--dataset", "cifar10", "--sampler", "random", "--n-trials", "1"]
    _refused(capsys, url, argv, "has 2 trials but no saved settings", "--force-settings")
    assert main([*argv, "--force-settings"]) == 0
    study = optuna.load_study(storage=url, study_name="nb")
    assert json.loads(study.user_attrs[CONFIG_ATTR])["dataset"] == "cifar10" and len(study.trials) == 3
    (record,) = study.user_attrs[SETTINGS_CHANGES_ATTR]
    assert record["changes"]["dataset"] == {"saved": None, "given": "cifar10"}


def test_an_empty_study_made_elsewhere_with_the_same_directions_is_taken(tmp_path):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    optuna.create_study(storage=url, study_name="nb", directions=["maximize", "minimize", "minimize"])
    assert main(["search", *_study_args(url), *NB201, "--dataset", "cifar10", "--n-trials", "1"]) == 0
    study = optuna.load_study(storage=url, study_name="nb")
    assert study.metric_names == ["accuracy", "params", "flops"] and CONFIG_ATTR in study.user_attrs


def test_a_worker_refuses_a_study_whose_directions_its_settings_do_not_make(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    optuna.create_study(storage=url, study_name="nb", direction="minimize")
    argv = ["search", *_study_args(url), *NB201, "--dataset", "cifar10"]
    config = json.loads(optuna.load_study(storage=url, study_name="nb").user_attrs.get(CONFIG_ATTR, "{}"))
    assert config == {}
    # Settings a search would save, put on the minimizing study by hand.
    other = f"sqlite:///{tmp_path / 'other.db'}"
    assert main(["search", *_study_args(other), *argv[5:], "--n-trials", "1"]) == 0
    saved = optuna.load_study(storage=other, study_name="nb").user_attrs[CONFIG_ATTR]
    optuna.load_study(storage=url, study_name="nb").set_user_attr(CONFIG_ATTR, saved)
    worker = ["worker", *_study_args(url), "--n-trials", "1", "--no-mlflow", "--no-progress"]
    _refused(capsys, url, worker, "study 'nb' has 1 objective (minimize)", "its saved settings make 3 objectives")


def test_a_worker_refuses_a_study_without_settings(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    study = optuna.create_study(storage=url, study_name="nb", direction="maximize")
    worker = ["worker", *_study_args(url), "--n-trials", "1", "--no-mlflow", "--no-progress"]
    # No trial yet: it may be a search's, about to save its settings; it is waited for, a few seconds.
    _refused(capsys, url, worker, "was not made by 'optuna-nas search'")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    _refused(capsys, url, worker, "was not made by 'optuna-nas search'")


@pytest.fixture(scope="module")
def digits_study(tmp_path_factory):
    """A chain study of the digits, trained for an epoch, with one trial."""
    folder = tmp_path_factory.mktemp("digits")
    url = f"sqlite:///{folder / 'nas.db'}"
    argv = ["search", *_study_args(url, "d"), "--no-mlflow", "--artifact-dir", "", *TINY_SEARCH]
    assert main([*argv, "--n-trials", "1"]) == 0
    return url, argv


@pytest.mark.parametrize(
    "extra, words",
    [
        (["--epochs", "3"], "--epochs 3: study 'd' was searched with 1"),
        (["--learning-rate", "0.01"], "--learning-rate 0.01: study 'd' was searched with 0.001"),
        (["--batch-size", "64"], "--batch-size 64: study 'd' was searched with 128"),
        (["--filters", "4,16"], "--filters '4,16': study 'd' was searched with '4,8'"),
        (["--max-layers", "4"], "--max-layers 4: study 'd' was searched with 3"),
        (["--dataset", "mnist5k"], "--dataset 'mnist5k': study 'd' was searched with 'digits'"),
        (["--space", "cell", "--force-settings"], "--space 'cell': study 'd' was searched with 'chain'"),
    ],
)
def test_training_settings_are_compared(digits_study, capsys, extra, words):
    url, argv = digits_study
    before = _state(url, "d")
    assert main([*argv, *extra, "--n-trials", "1"]) == 2
    _one_line_error(capsys, words)
    assert _state(url, "d") == before
