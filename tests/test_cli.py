import argparse
import json
import os
import subprocess
import sys

import optuna
import pytest
import torch
from _search_args import TINY_SEARCH

from optuna_nas.cli import main


def _search(tmp_path, *extra, study="s"):
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    code = main(
        [
            "search",
            "--storage",
            url,
            "--study-name",
            study,
            "--no-mlflow",
            "--artifact-dir",
            str(tmp_path / "artifacts"),
            *TINY_SEARCH,
            *extra,
        ]
    )
    assert code == 0
    return url


def test_search_pareto_export_and_qtable(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = _search(tmp_path, "--sampler", "metaqnn", "--n-trials", "6")
    out = capsys.readouterr().out
    assert "6 trials, Pareto front of" in out

    assert main(["pareto", "--storage", url, "--study-name", "s", "--out-dir", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert "hypervolume:" in out and "reference point: accuracy=0" in out
    for name in ("pareto_accuracy_vs_params", "pareto_accuracy_vs_flops"):
        assert os.path.getsize(tmp_path / "plots" / f"{name}.png") > 1000
        assert "plotly" in (tmp_path / "plots" / f"{name}.html").read_text()

    study = optuna.load_study(storage=url, study_name="s")
    best = max((t for t in study.trials if t.state.name == "COMPLETE"), key=lambda t: t.values[0])
    assert (
        main(
            [
                "export",
                "--storage",
                url,
                "--study-name",
                "s",
                "--trial",
                str(best.number),
                "--out",
                str(tmp_path / "export"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    size = os.path.getsize(tmp_path / "export" / "model.pt2")
    assert f"{tmp_path / 'export' / 'model.pt2'}: {size:,} bytes, outputs within " in out
    assert "weights: the trial's trained weights; " in out and "takes batches of any size" in out
    exported = torch.export.load(str(tmp_path / "export" / "model.pt2")).module()
    spec = json.loads((tmp_path / "export" / "spec.json").read_text())
    assert spec["spec_hash"] == best.user_attrs["spec_hash"]

    # The exported network is the trained one: same outputs as the spec rebuilt with the saved weights.
    import numpy as np

    from optuna_nas import data
    from optuna_nas import models
    from optuna_nas import spaces

    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path / "artifacts"))
    meta = next(
        m for m in optuna.artifacts.get_all_artifact_meta(best, storage=study._storage) if m.filename == "weights.npz"
    )
    optuna.artifacts.download_artifact(
        artifact_store=store, file_path=str(tmp_path / "w.npz"), artifact_id=meta.artifact_id
    )
    model = models.build_model(spaces.spec_from_dict(spec["spec"]), input_shape=(1, 8, 8), num_classes=10)
    with np.load(tmp_path / "w.npz", allow_pickle=False) as arrays:
        model.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files})
    batch = data.load("digits").val_x[:32]
    with torch.no_grad():
        assert torch.allclose(exported(batch), model.eval()(batch), atol=1e-5)
        accuracy = (model(data.load("digits").val_x).argmax(1) == data.load("digits").val_y).float().mean()
    assert float(accuracy) == pytest.approx(best.values[0], abs=1e-6)
    import onnxruntime  # the onnx extra, part of dev

    export_args = ["export", "--storage", url, "--study-name", "s", "--trial", str(best.number)]
    assert main([*export_args, "--out", str(tmp_path / "onnx"), "--format", "onnx"]) == 0
    out = capsys.readouterr().out
    assert all(f"{tmp_path / 'onnx' / name}: " in out for name in ("model.onnx", "model.onnx.data"))
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    (logits,) = session.run(None, {"images": batch.numpy()})
    with torch.no_grad():
        assert torch.allclose(torch.from_numpy(logits), model(batch), atol=1e-4)

    assert main(["qtable", "--storage", url, "--study-name", "s", "--out", str(tmp_path / "q.json")]) == 0
    table = json.loads((tmp_path / "q.json").read_text())
    assert any(len(set(values)) > 1 for values in table.values())


def test_export_can_retrain_from_scratch(tmp_path, capsys):
    url = _search(tmp_path, "--sampler", "random", "--n-trials", "1")
    assert (
        main(
            [
                "export",
                "--storage",
                url,
                "--study-name",
                "s",
                "--trial",
                "0",
                "--retrain-epochs",
                "1",
                "--artifact-dir",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "r"),
                "--format",
                "torchscript",
            ]
        )
        == 0
    )
    assert "retrained for 1 epochs" in capsys.readouterr().out
    torch.jit.load(str(tmp_path / "r" / "model.pt"))
    assert json.loads((tmp_path / "r" / "export.json").read_text())["format"] == "torchscript"


def test_resume_and_worker_join_the_same_study(tmp_path):
    url = _search(tmp_path, "--sampler", "evolution", "--n-trials", "2")
    _search(tmp_path, "--sampler", "evolution", "--n-trials", "1")
    assert (
        main(["worker", "--storage", url, "--study-name", "s", "--n-trials", "2", "--no-mlflow", "--no-progress"]) == 0
    )
    study = optuna.load_study(storage=url, study_name="s")
    assert len(study.trials) == 5
    assert study.metric_names == ["accuracy", "params", "flops"]


@pytest.mark.parametrize("sampler", ["evolution", "reinforce"])
def test_nasbench201_benchmark_runs_in_seconds(tmp_path, capsys, sampler):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    assert (
        main(
            [
                "search",
                "--benchmark",
                "nasbench201",
                "--dataset",
                "cifar100",
                "--sampler",
                sampler,
                "--n-trials",
                "30",
                "--storage",
                url,
                "--study-name",
                "nb",
                "--no-mlflow",
                "--no-progress",
            ]
        )
        == 0
    )
    study = optuna.load_study(storage=url, study_name="nb")
    assert len(study.trials) == 30
    assert all(len(t.values) == 3 for t in study.trials)


def test_reward_and_selection_are_saved_and_used_by_every_worker(tmp_path):
    from optuna_nas.cli._build import make_sampler
    from optuna_nas.cli._common import read_config
    from optuna_nas.spaces import NASBench201Space

    url = f"sqlite:///{tmp_path / 'nb.db'}"
    common = ["--storage", url, "--study-name", "nb", "--no-mlflow", "--no-progress"]
    options = [
        "--benchmark",
        "nasbench201",
        "--dataset",
        "cifar10",
        "--sampler",
        "evolution",
        "--reward",
        "linear:1,0,1e-9",
    ]
    assert main(["search", *common, *options, "--selection", "pareto", "--n-trials", "25"]) == 0
    assert main(["worker", *common, "--n-trials", "5"]) == 0
    study = optuna.load_study(storage=url, study_name="nb")
    config = read_config(study)
    assert (config["reward"], config["selection"]) == ("linear:1,0,1e-9", "pareto")
    assert len(study.trials) == 30 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    # What search and worker build from the saved settings: the given reward and selection.
    sampler = make_sampler("evolution", 0, NASBench201Space(), reward=config["reward"], selection=config["selection"])
    assert repr(sampler.reward_function(study)) == "rewards.linear([1.0, 0.0, 1e-09])"
    assert sampler.selection(study) == "pareto"
    default = make_sampler("evolution", 0, NASBench201Space())
    assert default.selection(study) == "pareto" and repr(default.reward_function(study)).startswith("rewards.dominance")


def test_a_resumed_search_keeps_the_studys_reward_and_refuses_another(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    common = ["--storage", url, "--study-name", "nb", "--no-mlflow", "--no-progress", "--benchmark", "nasbench201"]
    common += ["--dataset", "cifar10", "--sampler", "evolution"]
    assert main(["search", *common, "--reward", "dominance", "--n-trials", "3"]) == 0
    capsys.readouterr()
    assert main(["search", *common, "--reward", "first", "--n-trials", "1"]) == 2
    assert "--reward 'first': study 'nb' was searched with 'dominance'" in capsys.readouterr().err
    assert main(["search", *common, "--selection", "reward", "--n-trials", "1"]) == 2
    assert "the sampler's default" in capsys.readouterr().err
    assert main(["search", *common, "--n-trials", "2"]) == 0  # no flag: the study's own
    assert len(optuna.load_study(storage=url, study_name="nb").trials) == 5


def test_settings_saved_before_reward_options_existed_keep_the_first_objective():
    from optuna_nas.cli._build import saved_sampler_options

    assert saved_sampler_options({"sampler": "evolution"}) == ("first", "reward")
    assert saved_sampler_options({"sampler": "metaqnn"}) == ("first", None)
    assert saved_sampler_options({"sampler": "tpe"}) == (None, None)
    assert saved_sampler_options({"sampler": "evolution", "reward": None, "selection": None}) == (None, None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--reward", "linear:1,0"], "--reward 'linear:1,0' does not fit a study of 3 objectives"),
        (["--single-objective", "--reward", "mnas:1e8"], "--reward 'mnas:1e8' does not fit a study of 1 objectives"),
    ],
)
def test_a_reward_that_does_not_fit_the_objectives_is_refused_before_any_trial(tmp_path, capsys, extra, message):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    argv = ["search", "--storage", url, "--study-name", "nb", "--no-mlflow", "--no-progress"]
    argv += ["--benchmark", "nasbench201", "--dataset", "cifar10", "--sampler", "metaqnn", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err
    assert not os.path.exists(tmp_path / "nb.db") or not optuna.get_all_study_summaries(url)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "--sampler", "bohb"], "--sampler must be one of"),
        (["search", "--sampler", "pnas"], "--sampler pnas grows cells: use --space cell or nb201"),
        (["search", "--dataset", "imagenet"], "imagenet"),
        (["search", "--reward", "best"], "--reward must be first, dominance, linear:W1,W2,... or mnas:TARGET"),
        (["search", "--reward", "linear:1,x"], "--reward 'linear:1,x'"),
        (["search", "--reward", "mnas:-5"], "target must be a positive cost"),
        (["search", "--sampler", "tpe", "--reward", "first"], "--reward applies to the project's samplers"),
        (["search", "--sampler", "metaqnn", "--selection", "pareto"], "--selection applies to --sampler evolution"),
        (["search", "--epochs", "-1"], "epochs must be an integer >= 1, got -1"),
        (["search", "--storage", "nas.txt"], "--storage 'nas.txt' is neither a URL"),
        (["pareto", "--storage", "sqlite:///missing.db", "--study-name", "x"], "no database at"),
        (["pareto", "--storage", "SQLITE", "--study-name", "x"], "--storage"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(argv + ["--no-progress"] * (argv[0] == "search") + ["--no-mlflow"] * (argv[0] == "search")) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("optuna-nas: error:") and message in err and "\n" not in err


def test_missing_study_and_trial(tmp_path, capsys):
    url = _search(tmp_path, "--sampler", "random", "--n-trials", "1")
    assert main(["pareto", "--storage", url, "--study-name", "other"]) == 2
    assert "'other' is not in" in capsys.readouterr().err
    assert main(["export", "--storage", url, "--study-name", "s", "--trial", "7", "--out", str(tmp_path)]) == 2
    assert "--trial: 7 is not in study 's'" in capsys.readouterr().err


def test_console_script_prints_no_traceback_for_user_errors(tmp_path):
    script = os.path.join(os.path.dirname(sys.executable), "optuna-nas")
    result = subprocess.run(
        [script, "pareto", "--storage", "sqlite:///nowhere.db", "--study-name", "x"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1


def test_a_trial_that_raises_ends_only_itself(tmp_path, monkeypatch):
    from optuna_nas import models

    real_build = models.build_model
    calls = {"n": 0}

    def build_that_fails_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("a broken op")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(models, "build_model", build_that_fails_once)
    url = _search(tmp_path, "--sampler", "random", "--n-trials", "3")
    states = [t.state.name for t in optuna.load_study(storage=url, study_name="s").trials]
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]


def test_version_is_the_installed_package_version(capsys):
    from importlib import metadata

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out.strip() == f"optuna-nas {metadata.version('optuna-nas')}"


def _children(mlflow_db, experiment):
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{mlflow_db}")
    runs = client.search_runs([client.get_experiment_by_name(experiment).experiment_id])
    return {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}


def test_worker_pareto_and_export_follow_the_places_the_study_saved(tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study_args = ["--storage", url, "--study-name", "s"]
    monkeypatch.chdir(here)
    relative = ["--mlflow-uri", "sqlite:///mlflow.db", "--artifact-dir", "artifacts", "--data-root", "data"]
    assert main(["search", *study_args, *relative, *TINY_SEARCH, "--sampler", "random", "--n-trials", "1"]) == 0
    config = json.loads(optuna.load_study(storage=url, study_name="s").user_attrs["optuna_nas.config"])
    assert config["mlflow_uri"] == f"sqlite:///{here / 'mlflow.db'}"
    assert config["artifact_dir"] == str(here / "artifacts")
    assert config["data_root"] == str(here / "data")

    monkeypatch.chdir(elsewhere)
    assert main(["worker", *study_args, "--n-trials", "1", "--no-progress"]) == 0
    assert os.listdir(elsewhere) == []  # no ./mlflow.db, ./mlruns or ./optuna_nas_artifacts here
    children = _children(here / "mlflow.db", "s")
    assert set(children) == {"trial-0", "trial-1"}
    assert {r.info.status for r in children.values()} == {"FINISHED"}
    client = MlflowClient(tracking_uri=f"sqlite:///{here / 'mlflow.db'}")
    assert {a.path for a in client.list_artifacts(children["trial-1"].info.run_id)} == {"spec.json", "network.png"}
    study = optuna.load_study(storage=url, study_name="s")
    metas = optuna.artifacts.get_all_artifact_meta(study.trials[1], storage=study._storage)
    assert {m.filename for m in metas} == {"weights.npz", "network.png"}
    assert all((here / "artifacts" / m.artifact_id).is_file() for m in metas)
    capsys.readouterr()

    assert main(["pareto", *study_args, "--out-dir", str(tmp_path / "plots")]) == 0
    out = capsys.readouterr().out
    assert f"trained weights and network pictures: {here / 'artifacts'}" in out
    assert f"MLflow runs: sqlite:///{here / 'mlflow.db'}" in out
    assert main(["export", *study_args, "--trial", "1", "--out", str(tmp_path / "export")]) == 0
    assert "weights: the trial's trained weights" in capsys.readouterr().out
    assert os.listdir(elsewhere) == []

    # Given places win: a worker's artifacts go where it is told, and it logs nothing when told so.
    given = ["--no-mlflow", "--artifact-dir", "mine"]
    assert main(["worker", *study_args, "--n-trials", "1", "--no-progress", *given]) == 0
    study = optuna.load_study(storage=url, study_name="s")
    metas = optuna.artifacts.get_all_artifact_meta(study.trials[2], storage=study._storage)
    assert all((elsewhere / "mine" / m.artifact_id).is_file() for m in metas) and len(metas) == 2
    assert set(_children(here / "mlflow.db", "s")) == {"trial-0", "trial-1"}
    (tmp_path / "empty").mkdir()
    given = ["--trial", "1", "--out", str(tmp_path / "e"), "--artifact-dir", str(tmp_path / "empty")]
    assert main(["export", *study_args, *given]) == 2
    assert f"the artifact folder '{tmp_path / 'empty'}': trial 1's weights" in capsys.readouterr().err


def test_a_study_saved_without_its_places_falls_back_to_the_current_folder(tmp_path, monkeypatch):
    from optuna_nas.cli._common import CONFIG_ATTR
    from optuna_nas.cli._common import Locations
    from optuna_nas.cli._common import saved_locations

    monkeypatch.chdir(tmp_path)
    study = optuna.create_study()
    assert saved_locations(study) == Locations(mlflow_uri=None, data_root=None, artifact_dir=None, recorded=False)
    study.set_user_attr(CONFIG_ATTR, json.dumps({"space": "chain", "artifact_dir": "arts", "data_root": None}))
    places = saved_locations(study)
    assert places == Locations(
        "sqlite:///mlflow.db", data_root=None, artifact_dir=str(tmp_path / "arts"), recorded=False
    )
    study.set_user_attr(CONFIG_ATTR, json.dumps({"space": "chain", "artifact_dir": None, "mlflow_uri": None}))
    places = saved_locations(study)
    assert places.recorded and places.mlflow_uri is None and places.artifact_dir is None


def test_a_worker_says_when_the_places_the_study_saved_are_not_usable_here(tmp_path, capsys):
    from optuna_nas.cli._common import CONFIG_ATTR

    (tmp_path / "a-file").write_text("")
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    study = optuna.create_study(storage=url, study_name="s")
    saved = {"space": "chain", "artifact_dir": str(tmp_path / "a-file" / "sub"), "mlflow_uri": None}
    study.set_user_attr(CONFIG_ATTR, json.dumps(saved))
    assert main(["worker", "--storage", url, "--study-name", "s", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"the study's artifact folder '{tmp_path / 'a-file' / 'sub'}' cannot be created" in err
    assert "Pass --artifact-dir, --mlflow-uri or --no-mlflow" in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["worker", "--artifact-dir", "{file}"], "--artifact-dir '{file}' is a file, not a folder."),
        (["worker", "--artifact-dir", "{file}/sub"], "--artifact-dir '{file}/sub' cannot be created"),
        (["worker", "--data-root", "{file}"], "--data-root '{file}' is a file"),
        (["worker", "--mlflow-uri", "sqlite:///nowhere/m.db"], "the folder '{cwd}/nowhere' does not exist"),
        (["worker", "--mlflow-uri", ""], "--mlflow-uri must be an MLflow tracking URI"),
        (["export", "--trial", "0", "--out", "x", "--artifact-dir", "{file}"], "--artifact-dir '{file}' is a file"),
        (["export", "--trial", "0", "--out", "x", "--artifact-dir", "none"], "--artifact-dir 'none': no such folder"),
        (["dashboard", "--artifact-dir", "{file}"], "--artifact-dir '{file}' is a file"),
        (["search", "--artifact-dir", "{file}", "--no-mlflow"], "--artifact-dir '{file}' is a file"),
    ],
)
def test_given_places_are_checked_before_any_work(argv, message, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a-file").write_text("")
    study = [] if argv[0] == "dashboard" else ["--study-name", "s"]
    # The storage does not exist: the place given is what is reported, before the study is opened.
    argv = [a.format(file="a-file") for a in argv] + ["--storage", "sqlite:///missing.db", *study]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == err.splitlines()[0] and message.format(file="a-file", cwd=tmp_path) in err
    assert sorted(os.listdir(tmp_path)) == ["a-file"]


def test_dashboard_serves_the_artifact_folder_the_studies_agree_on(tmp_path, monkeypatch, capsys):
    import optuna_dashboard

    from optuna_nas.cli._common import CONFIG_ATTR

    served = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **kw: served.append(kw["artifact_store"]))
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'nas.db'}"

    def add_study(name, **places):
        study = optuna.create_study(storage=url, study_name=name)
        study.set_user_attr(CONFIG_ATTR, json.dumps({"space": "chain", "mlflow_uri": None, **places}))

    def serve(*extra):
        assert main(["dashboard", "--storage", url, *extra]) == 0
        store, err = served.pop(), capsys.readouterr().err
        assert err.count("\n") <= 1
        return (None if store is None else str(store._base_path)), err

    optuna.create_study(storage=url, study_name="plain")  # not made by search: no places
    assert serve() == (
        None,
        "optuna-nas: no study records an artifact folder; pass --artifact-dir to serve "
        "trained weights and network pictures.\n",
    )
    (tmp_path / "a").mkdir()
    add_study("one", artifact_dir=str(tmp_path / "a"))
    add_study("benchmark", artifact_dir=None)
    add_study("two", artifact_dir=str(tmp_path / "a"))
    assert serve() == (str(tmp_path / "a"), "")
    add_study("three", artifact_dir=str(tmp_path / "b"))
    store, err = serve()
    assert store is None and "different folders" in err and "(one, two)" in err and "(three)" in err
    assert serve("--artifact-dir", "b") == (str(tmp_path / "b"), "")
    assert (tmp_path / "b").is_dir()


def test_every_option_has_help_and_shows_its_default(capsys):
    from optuna_nas.cli import build_parser

    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert set(commands.choices) == {"search", "worker", "recover", "pareto", "export", "derive", "qtable", "dashboard"}
    for name, command in commands.choices.items():
        for action in command._actions:
            assert action.help and action.help.strip(), f"{name} {action.option_strings} has no help"
            if action.default is None and not action.required:
                assert "default" in action.help, f"{name} {action.option_strings} does not say its default"
        with pytest.raises(SystemExit) as stop:
            main([name, "--help"])
        assert stop.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith(f"usage: optuna-nas {name}")
        if name != "qtable":
            assert "(default: " in out


def test_search_shows_each_trial_training_inside_the_bar(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    shown = [arg for arg in TINY_SEARCH if arg != "--no-progress"]
    argv = ["search", "--storage", f"sqlite:///{tmp_path / 'nas.db'}", "--no-mlflow", "--artifact-dir", ""]
    assert main([*argv, *shown, "--epochs", "2", "--n-trials", "3", "--n-jobs", "2"]) == 0
    err = capsys.readouterr().err
    for number in range(3):
        assert f"trial {number} epoch 1/2 batch 0/10" in err
        assert f"trial {number} epoch 2/2 val_accuracy " in err
    assert "3/3" in err


def test_a_storage_password_is_never_shown(capsys):
    url = "postgresql://nas:s3cret-pw@127.0.0.1:1/studies"
    for argv in (
        ["worker", "--storage", url, "--study-name", "s"],
        ["pareto", "--storage", url, "--study-name", "s"],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "s3cret-pw" not in err and "nas:***@127.0.0.1:1" in err
        assert len(err.strip().splitlines()) == 1


def test_a_study_name_never_becomes_a_path_outside_the_current_folder(tmp_path, monkeypatch, capsys):
    here = tmp_path / "a" / "b"
    here.mkdir(parents=True)
    monkeypatch.chdir(here)
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    name = "x/../../escaped"
    common = ["--storage", url, "--study-name", name]
    search = ["search", *common, "--benchmark", "nasbench201", "--dataset", "cifar10", "--sampler", "random"]
    assert main([*search, "--n-trials", "4", "--no-mlflow", "--no-progress"]) == 0
    assert main(["pareto", *common]) == 0
    assert sorted(p.name for p in here.iterdir()) == ["pareto-x_.._.._escaped"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "nb.db"]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["worker", "--n-trials", "0"], "--n-trials must be >= 1, got 0"),
        (["worker", "--n-trials", "-3"], "--n-trials must be >= 1, got -3"),
        (["worker", "--n-jobs", "0"], "--n-jobs must be >= 1, got 0"),
        (["pareto", "--reference", "nan,1,1"], "--reference must be finite numbers"),
        (["dashboard", "--port", "-1"], "--port must be in 1-65535, got -1"),
        (["dashboard", "--port", "99999"], "--port must be in 1-65535, got 99999"),
        (["worker", "--study-name", ""], "--study-name must name a study, got ''"),
    ],
)
def test_shared_options_are_checked_alike_by_every_command(tmp_path, capsys, argv, message):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    search = ["search", "--storage", url, "--study-name", "s", "--benchmark", "nasbench201", "--dataset", "cifar10"]
    assert main([*search, "--sampler", "random", "--n-trials", "3", "--no-mlflow", "--no-progress"]) == 0
    capsys.readouterr()
    study = [] if "--study-name" in argv or argv[0] == "dashboard" else ["--study-name", "s"]
    assert main([*argv, "--storage", url, *study]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert len(optuna.load_study(storage=url, study_name="s").trials) == 3  # nothing ran


@pytest.mark.parametrize(
    "argv", [["search", "--epochs", "x"], ["nosuch"], ["worker"], ["search", "--space", "nope"], ["export", "--format"]]
)
def test_a_malformed_command_line_is_one_line_and_status_2(capsys, argv):
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("optuna-nas") and "error:" in err[0] and "--help" in err[0]
