"""The predictor-driven samplers and the learning-curve pruner on the command line."""

import json

import optuna
import pytest
from _search_args import TINY_SEARCH
from optuna.trial import TrialState

from optuna_nas.cli import main


def _common(tmp_path):
    return ["--storage", f"sqlite:///{tmp_path / 'nas.db'}", "--study-name", "s", "--no-mlflow", "--no-progress"]


@pytest.mark.parametrize("sampler", ["pnas", "evolution-guided"])
def test_the_predictor_samplers_search_the_benchmark_and_a_worker_joins(tmp_path, sampler):
    nb201 = ["--benchmark", "nasbench201", "--dataset", "cifar10", "--sampler", sampler]
    assert main(["search", *_common(tmp_path), *nb201, "--n-trials", "25"]) == 0
    assert main(["worker", *_common(tmp_path), "--n-trials", "10"]) == 0
    study = optuna.load_study(storage=f"sqlite:///{tmp_path / 'nas.db'}", study_name="s")
    assert len(study.trials) == 35 and all(t.state == TrialState.COMPLETE for t in study.trials)
    assert len({tuple(t.params.values()) for t in study.trials}) == 35
    if sampler == "pnas":  # the stages follow one another, from the one-edge cells up
        stages = [t.system_attrs["PNASSampler:stage"] for t in study.trials]
        assert stages[0] == 1 and stages == sorted(stages) and stages[-1] > 1
    else:  # once enough trials finished, the predictor picks each child
        assert sum("PredictorGuidedSampler:predicted" in t.system_attrs for t in study.trials) >= 20


def test_pnas_needs_a_cell_space(tmp_path, capsys):
    assert main(["search", *_common(tmp_path), *TINY_SEARCH, "--sampler", "pnas", "--n-trials", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--sampler pnas grows cells: use --space cell or nb201" in err


def test_the_learning_curve_pruner_is_a_setting_of_the_study(tmp_path, capsys):
    args = [*_common(tmp_path), *TINY_SEARCH, "--epochs", "3", "--sampler", "random", "--artifact-dir", ""]
    assert main(["search", *args, "--pruner", "learning-curve", "--n-trials", "8"]) == 0
    study = optuna.load_study(storage=f"sqlite:///{tmp_path / 'nas.db'}", study_name="s")
    assert json.loads(study.user_attrs["optuna_nas.config"])["pruner"] == "learning-curve"
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials)
    capsys.readouterr()
    # Resuming without it is another search: refused, one line.
    assert main(["search", *args, "--n-trials", "1"]) == 2
    assert "--pruner 'none'" in capsys.readouterr().err


def test_the_pruner_needs_trainings(tmp_path, capsys):
    nb201 = ["--benchmark", "nasbench201", "--dataset", "cifar10", "--pruner", "learning-curve"]
    assert main(["search", *_common(tmp_path), *nb201, "--n-trials", "1"]) == 2
    assert "--pruner learning-curve stops trainings; --benchmark nasbench201 trains none" in capsys.readouterr().err


@pytest.mark.parametrize("sampler", ["evolution", "evolution-guided", "metaqnn", "reinforce"])
def test_our_samplers_train_each_nasbench201_function_once(tmp_path, sampler):
    # Cells that differ only on edges no input-to-output path crosses compute one function; a
    # mutation of such an edge made evolution train the same network again.
    from optuna_nas.spaces import NASBench201Space

    nb201 = ["--benchmark", "nasbench201", "--dataset", "cifar10", "--sampler", sampler]
    assert main(["search", *_common(tmp_path), *nb201, "--n-trials", "60"]) == 0
    study = optuna.load_study(storage=f"sqlite:///{tmp_path / 'nas.db'}", study_name="s")
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    keys = [NASBench201Space().dedup_key(t.params) for t in complete]
    assert len(complete) >= 55 and None not in keys
    assert len(set(keys)) == len(keys)
