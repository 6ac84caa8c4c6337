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
    scripted = torch.jit.load(str(tmp_path / "export" / "model.pt"))
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
        assert torch.allclose(scripted(batch), model.eval()(batch), atol=1e-5)
        accuracy = (model(data.load("digits").val_x).argmax(1) == data.load("digits").val_y).float().mean()
    assert float(accuracy) == pytest.approx(best.values[0], abs=1e-6)

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
            ]
        )
        == 0
    )
    assert "retrained for 1 epochs" in capsys.readouterr().out
    torch.jit.load(str(tmp_path / "r" / "model.pt"))


def test_resume_and_worker_join_the_same_study(tmp_path):
    url = _search(tmp_path, "--sampler", "evolution", "--n-trials", "2")
    _search(tmp_path, "--sampler", "evolution", "--n-trials", "1")
    assert (
        main(["worker", "--storage", url, "--study-name", "s", "--n-trials", "2", "--no-mlflow", "--no-progress"]) == 0
    )
    study = optuna.load_study(storage=url, study_name="s")
    assert len(study.trials) == 5
    assert study.metric_names == ["accuracy", "params", "flops"]


def test_nasbench201_benchmark_runs_in_seconds(tmp_path, capsys):
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
                "evolution",
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


@pytest.mark.parametrize(
    "argv, message",
    [
        (["search", "--sampler", "bohb"], "--sampler must be one of"),
        (["search", "--sampler", "pnas"], "'pnas' is not available yet"),
        (["search", "--dataset", "imagenet"], "imagenet"),
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
