import csv
import json
import os
import subprocess
import sys

import optuna
import pytest

from optuna_nas import metrics
from optuna_nas import models
from optuna_nas import objectives
from optuna_nas import spaces
from optuna_nas.objectives._nasbench201 import _costs

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(ROOT, "benchmarks", "nasbench201.py")


def test_costs_cover_every_cell_of_the_table():
    with open(objectives.DEFAULT_TABLE, newline="") as f:
        archs = {row["arch"] for row in csv.DictReader(f)}
    assert len(archs) == 15_625
    for dataset in objectives.NB201_DATASETS:
        assert set(_costs(dataset)) == archs


@pytest.mark.parametrize(
    "arch",
    [
        "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|",
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|",
        "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|",
    ],
)
@pytest.mark.parametrize(
    "dataset, shape, classes",
    [
        ("cifar10", (3, 32, 32), 10),
        ("cifar100", (3, 32, 32), 100),
        ("imagenet16", (3, 16, 16), 120),
    ],
)
def test_costs_match_a_fresh_count_of_the_rebuilt_network(arch, dataset, shape, classes):
    model = models.build_model(spaces.NASBench201Spec.from_arch_str(arch), input_shape=shape, num_classes=classes)
    cost = metrics.count_cost(model, input_shape=shape)
    assert _costs(dataset)[arch] == (cost.params, cost.flops)


def test_objective_returns_the_signal_and_never_needs_a_test_column(tmp_path):
    table = tmp_path / "signal_only.csv"
    with open(objectives.DEFAULT_TABLE, newline="") as source, open(table, "w", newline="") as target:
        reader = csv.DictReader(source)
        writer = csv.writer(target)
        writer.writerow(["arch", "cifar10_valid_12ep"])
        expected = {}
        for row in reader:
            writer.writerow([row["arch"], row["cifar10_valid_12ep"]])
            expected[row["arch"]] = float(row["cifar10_valid_12ep"])
    objective = objectives.NASBench201(table, "cifar10")
    study = optuna.create_study(direction=objective.directions[0])
    study.optimize(objective, n_trials=10)
    for trial in study.trials:
        assert trial.value == expected[trial.user_attrs["arch"]] / 100.0  # a fraction, as every accuracy
        assert 0.0 <= trial.value <= 1.0


def test_multi_objective_returns_params_and_flops(tmp_path):
    objective = objectives.NASBench201(objectives.DEFAULT_TABLE, "imagenet16", multi_objective=True)
    assert objective.directions == ["maximize", "minimize", "minimize"]
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=5)
    for trial in study.trials:
        accuracy, params, flops = trial.values
        assert (params, flops) == _costs("imagenet16")[trial.user_attrs["arch"]]
        assert 0.0 <= accuracy <= 1.0


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"dataset": "svhn"}, ValueError, "dataset.*svhn"),
        ({"signal": "test_200ep"}, ValueError, "signal"),
        ({"signal": "valid_200ep"}, ValueError, "valid_200ep"),
        ({"table": "/nonexistent/table.csv"}, FileNotFoundError, "table"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    arguments = {"table": objectives.DEFAULT_TABLE, **kwargs}
    with pytest.raises(error, match=match):
        objectives.NASBench201(arguments.pop("table"), **arguments)


def _run(*args):
    return subprocess.run([sys.executable, RUNNER, *args], capture_output=True, text=True, check=True).stdout


def test_runner_records_every_run(tmp_path):
    out = tmp_path / "results.json"
    text = _run("--samplers", "random,tpe,evolution", "--budget", "8", "--seeds", "2", "--out", str(out))
    assert "random" in text and "tpe" in text and "vs TPE" in text
    results = json.loads(out.read_text())
    assert results["dataset"] == "cifar10" and results["budget"] == 8
    assert len(results["runs"]) == 6
    for run in results["runs"]:
        assert len(run["curve"]) == 8 and run["curve"] == sorted(run["curve"])
        assert run["signal"] == run["curve"][-1]
        assert 0 < run["sampler_s"] <= run["wall_s"]
        assert spaces.NASBench201Spec.from_arch_str(run["arch"])


def test_runner_multi_objective_and_another_tables_columns(tmp_path):
    table = tmp_path / "imagenet_only.csv"
    with open(objectives.DEFAULT_TABLE, newline="") as source, open(table, "w", newline="") as target:
        reader = csv.DictReader(source)
        columns = ["index", "arch", "imagenet16_valid_12ep", "imagenet16_test_200ep"]
        writer = csv.DictWriter(target, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(reader)
    out = tmp_path / "mo.json"
    text = _run(
        "--samplers",
        "random,nsga2",
        "--budget",
        "10",
        "--seeds",
        "2",
        "--dataset",
        "imagenet16",
        "--table",
        str(table),
        "--multi-objective",
        "--seed-offset",
        "5",
        "--out",
        str(out),
    )
    assert "hypervolume" in text
    runs = json.loads(out.read_text())["runs"]
    assert [r["seed"] for r in runs] == [5, 6, 5, 6]
    for run in runs:
        assert run["pareto"] and all(len(point) == 3 for point in run["pareto"])
        assert 0 < run["hypervolume"] < 1


def test_a_tabular_trial_records_its_datasets_network(tmp_path):
    from optuna_nas import analysis

    objective = objectives.NASBench201(objectives.DEFAULT_TABLE, "imagenet16")
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    attrs = study.trials[0].user_attrs
    assert (attrs["dataset"], attrs["input_shape"], attrs["num_classes"]) == ("imagenet16", [3, 16, 16], 120)
    with pytest.raises(ValueError, match="no saved weights"):
        analysis.export(study, 0, str(tmp_path))
    with pytest.raises(ValueError, match="dataset"):
        analysis.export(study, 0, str(tmp_path), retrain_epochs=1)
