import dataclasses
import json
import os
import sys

import numpy as np
import optuna
import pytest
import torch

from optuna_nas import analysis
from optuna_nas import metrics
from optuna_nas import models
from optuna_nas import objectives
from optuna_nas import spaces
from optuna_nas.cli import build_parser
from optuna_nas.cli import main

# One network of each built-in space, with the parts that are hardest to export: a strided conv and a
# fully connected head; reduction cells (FactorizedReduce for identity) with pooling and dilated
# convs; NAS-Bench-201 with every op, "none" (zeros) included.
SPECS = {
    "chain": spaces.ChainSpec(
        layers=(
            spaces.ChainLayer("conv", kernel=3, filters=8, stride=1),
            spaces.ChainLayer("max_pool"),
            spaces.ChainLayer("conv", kernel=3, filters=8, stride=2),
            spaces.ChainLayer("fc", units=32),
        )
    ),
    "cell": spaces.CellSpec(
        blocks=(
            spaces.CellBlock(input_a=0, op_a="identity", input_b=1, op_b="sep_conv_3x3"),
            spaces.CellBlock(input_a=2, op_a="avg_pool_3x3", input_b=0, op_b="dil_conv_3x3"),
        ),
        channels=8,
    ),
    "nb201": spaces.NASBench201Spec(
        ops=("nor_conv_3x3", "skip_connect", "nor_conv_1x1", "avg_pool_3x3", "none", "skip_connect")
    ),
}
MODEL_FILES = {"pt2": "model.pt2", "onnx": "model.onnx", "torchscript": "model.pt"}


class FixedSpace(spaces.Space):
    """A space of one architecture, so the objective trains exactly the network under test."""

    name = "fixed"

    def __init__(self, spec):
        self.spec = spec

    def decide(self, decider):
        return self.spec

    def to_dict(self):
        return {"space": self.name}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, digits):
    """``kind -> (study, artifact store)``: one trial per space, trained by the objective for one epoch on a
    slice of digits, its weights uploaded as the objective does."""
    small = dataclasses.replace(
        digits,
        train_x=digits.train_x[:128],
        train_y=digits.train_y[:128],
        val_x=digits.val_x[:64],
        val_y=digits.val_y[:64],
        test_x=digits.test_x[:64],
        test_y=digits.test_y[:64],
    )
    cache = {}

    def get(kind):
        if kind not in cache:
            store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path_factory.mktemp(f"artifacts-{kind}")))
            objective = objectives.ImageClassification(
                FixedSpace(SPECS[kind]), small, epochs=1, batch_size=32, artifact_store=store, device="cpu"
            )
            study = optuna.create_study(directions=objective.directions, study_name=kind)
            study.optimize(objective, n_trials=1)
            assert study.trials[0].state == optuna.trial.TrialState.COMPLETE
            cache[kind] = study, store
        return cache[kind]

    return get


def _trained_network(study, store, tmp_path):
    """The trial's network rebuilt from its spec and its uploaded weights, without the export code."""
    trial = study.trials[0]
    meta = next(
        m for m in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage) if m.filename == "weights.npz"
    )
    optuna.artifacts.download_artifact(
        artifact_store=store, file_path=str(tmp_path / "weights.npz"), artifact_id=meta.artifact_id
    )
    model = models.build_model(spaces.spec_from_dict(trial.user_attrs["spec"]), input_shape=(1, 8, 8), num_classes=10)
    with np.load(tmp_path / "weights.npz", allow_pickle=False) as arrays:
        model.load_state_dict({k: torch.from_numpy(arrays[k]) for k in arrays.files})
    return model.eval()


def _run_exported(format, folder, batch):
    """The written file's outputs on ``batch``, loaded the way a user would."""
    path = str(folder / MODEL_FILES[format])
    if format == "pt2":
        return torch.export.load(path).module()(batch)
    if format == "onnx":
        import onnxruntime

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        (logits,) = session.run(None, {"images": batch.numpy()})
        return torch.from_numpy(logits)
    return torch.jit.load(path)(batch)


@pytest.mark.parametrize(
    ("kind", "format"),
    [(kind, format) for kind in SPECS for format in ("pt2", "onnx")] + [("chain", "torchscript")],
)
def test_the_exported_file_computes_the_trained_network(trained, digits, tmp_path, kind, format):
    study, store = trained(kind)
    out = tmp_path / "out"
    result = analysis.export(study, 0, str(out), format=format, artifact_store=store)

    network = _trained_network(study, store, tmp_path)
    # Real images, and a batch size neither the export's example (2) nor its check (8) used.
    batch = digits.val_x[:5]
    with torch.no_grad():
        difference = float((_run_exported(format, out, batch) - network(batch)).abs().max())
    assert difference < 1e-4

    report = json.loads((out / "export.json").read_text())
    assert {k: v for k, v in result.items() if k != "paths"} == report
    model_files = sorted(name for name in os.listdir(out) if name.startswith("model."))
    assert sorted(report["files"]) == model_files
    assert MODEL_FILES[format] in model_files
    if format == "onnx":  # the exporter keeps the weights beside the graph
        assert model_files == ["model.onnx", "model.onnx.data"]
        assert result["paths"]["model_data"] == str(out / "model.onnx.data")
    for name, size in report["files"].items():
        assert size == os.path.getsize(out / name) > 0
    cost = metrics.count_cost(network, input_shape=(1, 8, 8))
    assert (report["params"], report["flops"]) == (cost.params, cost.flops)
    assert (report["params"], report["flops"]) == (
        study.trials[0].user_attrs["params"],
        study.trials[0].user_attrs["flops"],
    )
    assert report["format"] == format
    assert report["input_shape"] == [1, 8, 8]
    assert report["batch_size"] == 8 and report["dynamic_batch"] is True
    assert 0 <= report["max_abs_difference"] < report["tolerance"] == 1e-4
    assert report["torch_version"] == torch.__version__
    assert report["weights"] == "the trial's trained weights"
    assert result["paths"]["model"] == str(out / MODEL_FILES[format])
    assert json.loads((out / "spec.json").read_text())["spec_hash"] == SPECS[kind].spec_hash


def test_a_network_that_fixes_its_batch_size_is_exported_for_that_size(trained, tmp_path, monkeypatch):
    study, store = trained("chain")
    build = models.build_model

    def build_fixed_batch(spec, **kwargs):
        model = build(spec, **kwargs)

        class FixedBatch(type(model)):
            def forward(self, x):
                logits = super().forward(x)
                return logits if x.shape[0] == 8 else -logits

        model.__class__ = FixedBatch
        return model

    monkeypatch.setattr(models, "build_model", build_fixed_batch)
    with pytest.warns(UserWarning, match="takes batches of exactly 8 inputs"):
        result = analysis.export(study, 0, str(tmp_path), artifact_store=store)
    assert result["dynamic_batch"] is False
    assert result["max_abs_difference"] < 1e-4
    assert json.loads((tmp_path / "export.json").read_text())["dynamic_batch"] is False


def test_a_file_that_does_not_match_the_network_is_removed(trained, tmp_path, monkeypatch):
    from optuna_nas.analysis import _export

    study, store = trained("chain")
    analysis.export(study, 0, str(tmp_path), artifact_store=store)
    assert (tmp_path / "export.json").is_file()
    run = _export._RUNNERS["pt2"]
    monkeypatch.setitem(_export._RUNNERS, "pt2", lambda path, batch: run(path, batch) + 1e-3)
    with pytest.raises(RuntimeError, match=r"differ from the network's by 0\.001 \(tolerance 0\.0001\)"):
        analysis.export(study, 0, str(tmp_path), artifact_store=store)
    # Neither the bad file nor the earlier export's report is left to pass for it.
    assert sorted(os.listdir(tmp_path)) == ["spec.json"]


def test_export_arguments_are_checked_before_anything_is_written(tmp_path):
    study = optuna.create_study()
    with pytest.raises(ValueError, match=r"format must be one of \['pt2', 'onnx', 'torchscript'\], got 'tflite'"):
        analysis.export(study, 0, str(tmp_path / "out"), format="tflite")
    with pytest.raises(ValueError, match="format must be one of"):
        analysis.export(study, 0, str(tmp_path / "out"), format="PT2")
    assert not (tmp_path / "out").exists()


def test_onnx_without_its_packages_says_what_to_install(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime now raises ImportError
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'nas.db'}", study_name="s")
    with pytest.raises(ImportError, match=r"needs onnxruntime, not installed here: pip install 'optuna-nas\[onnx\]'"):
        analysis.export(study, 0, str(tmp_path / "out"), format="onnx")
    assert not (tmp_path / "out").exists()

    args = ["export", "--storage", f"sqlite:///{tmp_path / 'nas.db'}", "--study-name", "s", "--trial", "0"]
    assert main([*args, "--out", str(tmp_path / "out"), "--format", "onnx"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("optuna-nas: error: --format onnx needs onnxruntime, not installed here")
    assert "pip install 'optuna-nas[onnx]'" in err


def test_cli_format_option(capsys):
    parser = build_parser()
    args = parser.parse_args(["export", "--storage", "x.log", "--study-name", "s", "--trial", "0", "--out", "o"])
    assert args.format == "pt2"
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(
            ["export", "--storage", "x.log", "--study-name", "s", "--trial", "0", "--out", "o", "--format", "tflite"]
        )
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --format: invalid choice: 'tflite'" in err
    assert all(name in err.split("choose from")[1] for name in ("pt2", "onnx", "torchscript"))
    with pytest.raises(SystemExit):
        parser.parse_args(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--format {pt2,onnx,torchscript}" in help_text
    assert "(default: pt2)" in help_text
