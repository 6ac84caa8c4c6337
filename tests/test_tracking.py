import subprocess
import sys

import optuna
import pytest
from _search_args import TINY_SEARCH
from mlflow.tracking import MlflowClient

from optuna_nas.cli import main
from optuna_nas.tracking import MLflowTracker


def _runs(uri, experiment):
    client = MlflowClient(tracking_uri=uri)
    experiments = [e for e in client.search_experiments() if e.name == experiment]
    assert len(experiments) == 1, "one experiment per study, never duplicated"
    runs = client.search_runs([experiments[0].experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    return client, parents, children


def _check_children(client, parent, children, epochs=1):
    numbers = sorted(int(r.data.tags["optuna.trial_number"]) for r in children)
    assert numbers == list(range(len(children)))
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.info.status == "FINISHED"
        assert {"accuracy", "params", "flops", "test_accuracy", "train_seconds"} <= set(run.data.metrics)
        assert any(key.startswith("layer_0/type") for key in run.data.params)
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert [m.step for m in history] == list(range(1, epochs + 1))
        assert len(client.get_metric_history(run.info.run_id, "train_loss")) == epochs
        artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"spec.json", "network.png"} <= artifacts


@pytest.mark.parametrize("n_jobs", ["1", "2"])
def test_search_writes_one_parent_and_one_child_per_trial(tmp_path, mlflow_uri, n_jobs):
    name = f"tracked-{n_jobs}"
    assert (
        main(
            [
                "search",
                "--storage",
                f"sqlite:///{tmp_path / 'nas.db'}",
                "--study-name",
                name,
                "--sampler",
                "random",
                "--n-trials",
                "5",
                "--n-jobs",
                n_jobs,
                "--mlflow-uri",
                mlflow_uri,
                "--artifact-dir",
                "",
                *TINY_SEARCH,
                "--epochs",
                "2",
            ]
        )
        == 0
    )
    client, parents, children = _runs(mlflow_uri, name)
    assert len(parents) == 1 and len(children) == 5
    assert parents[0].info.status == "FINISHED"
    _check_children(client, parents[0], children, epochs=2)


def test_two_processes_share_one_parent_run(tmp_path, mlflow_uri):
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    optuna.create_study(storage=url, study_name="shared", directions=["maximize", "minimize", "minimize"])
    command = [
        sys.executable,
        "-m",
        "optuna_nas.cli",
        "search",
        "--storage",
        url,
        "--study-name",
        "shared",
        "--sampler",
        "evolution",
        "--n-trials",
        "3",
        "--mlflow-uri",
        mlflow_uri,
        "--artifact-dir",
        "",
        *TINY_SEARCH,
    ]
    workers = [subprocess.Popen([*command, "--seed", str(seed)], cwd=tmp_path) for seed in (0, 1)]
    assert [w.wait(timeout=600) for w in workers] == [0, 0]
    client, parents, children = _runs(mlflow_uri, "shared")
    assert len(parents) == 1 and len(children) == 6
    _check_children(client, parents[0], children)


def test_pruned_and_failed_trials_are_recorded_as_such(mlflow_uri):
    def objective(trial):
        x = trial.suggest_float("x", 0, 1)
        trial.set_user_attr("val_accuracy_curve", [0.1, 0.2])
        if trial.number == 1:
            raise optuna.TrialPruned()
        return float("nan") if trial.number == 2 else x

    tracker = MLflowTracker(tracking_uri=mlflow_uri)
    study = optuna.create_study(study_name="states")
    study.optimize(objective, n_trials=3, callbacks=[tracker])
    _client, _, children = _runs(mlflow_uri, "states")
    status = {
        int(r.data.tags["optuna.trial_number"]): (r.info.status, r.data.tags["optuna.trial_state"]) for r in children
    }
    assert status == {0: ("FINISHED", "COMPLETE"), 1: ("KILLED", "PRUNED"), 2: ("FAILED", "FAIL")}


def test_unreachable_store_warns_once_and_the_study_goes_on(caplog):
    tracker = MLflowTracker(tracking_uri="http://127.0.0.1:9")
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=3, callbacks=[tracker])
    assert len(study.trials) == 3
    warnings = [r for r in caplog.records if "MLflow tracking" in r.getMessage()]
    assert len(warnings) == 1 and "127.0.0.1:9" in warnings[0].getMessage()


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_epochs_stream_to_the_trials_run_while_it_trains_and_it_stays_one_run(digits, mlflow_uri):
    from optuna_nas import objectives
    from optuna_nas import spaces

    tracker = MLflowTracker(tracking_uri=mlflow_uri)
    client = MlflowClient(tracking_uri=mlflow_uri)
    seen_while_training = {}

    def look_in_mlflow(trial, progress):
        if progress.epoch_end and progress.epoch == 2:
            (run,) = client.search_runs(
                [client.get_experiment_by_name("streamed").experiment_id],
                filter_string=f"tags.`optuna.trial_number` = '{trial.number}'",
            )
            steps = [m.step for m in client.get_metric_history(run.info.run_id, "val_accuracy")]
            seen_while_training[trial.number] = (run.info.status, run.data.tags["optuna.trial_state"], steps)

    space = spaces.ChainSpace(max_layers=2, input_size=8, filters=(4,), fc_units=(16,))
    objective = objectives.ImageClassification(
        space, digits, epochs=3, batch_size=256, progress_callbacks=[tracker.log_progress, look_in_mlflow]
    )
    study = optuna.create_study(study_name="streamed", directions=objective.directions)
    study.set_metric_names(objective.metric_names)
    study.optimize(objective, n_trials=2, callbacks=[tracker])
    assert seen_while_training == {0: ("RUNNING", "RUNNING", [1, 2]), 1: ("RUNNING", "RUNNING", [1, 2])}
    client, parents, children = _runs(mlflow_uri, "streamed")
    assert len(parents) == 1 and len(children) == 2
    _check_children(client, parents[0], children, epochs=3)
    assert {r.data.tags["optuna.trial_state"] for r in children} == {"COMPLETE"}


def test_streaming_to_an_unreachable_store_warns_once_and_training_goes_on(digits, caplog):
    from optuna_nas import objectives
    from optuna_nas import spaces

    tracker = MLflowTracker(tracking_uri="http://127.0.0.1:9")
    space = spaces.ChainSpace(max_layers=2, input_size=8, filters=(4,), fc_units=(16,))
    objective = objectives.ImageClassification(
        space, digits, epochs=2, batch_size=256, progress_callbacks=[tracker.log_progress]
    )
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=2, callbacks=[tracker])
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.COMPLETE] * 2
    warnings = [r for r in caplog.records if "MLflow tracking" in r.getMessage()]
    assert len(warnings) == 1
