"""The extension points, used from outside the package as the README's "Extending" section does.

A new op and a new toy space are registered here, in test code, and a search with an artifact store
and MLflow tracking runs on them; its Pareto front is read and its best network exported. Nothing in
the package knows of them.
"""

from __future__ import annotations

import dataclasses
import json
import pathlib

import numpy as np
import optuna
import pytest
import torch
from mlflow.tracking import MlflowClient
from torch import nn

from optuna_nas import analysis
from optuna_nas import models
from optuna_nas import objectives
from optuna_nas import samplers
from optuna_nas import spaces
from optuna_nas.tracking import MLflowTracker

# --- what a user writes ------------------------------------------------------------------------------


@models.register_op("conv_3x3_selu")
def conv_3x3_selu(channels: int, stride: int) -> nn.Module:
    return nn.Sequential(nn.Conv2d(channels, channels, 3, stride, 1, bias=False), nn.BatchNorm2d(channels), nn.SELU())


@spaces.register_spec
@dataclasses.dataclass(frozen=True)
class StemOpSpec(spaces.ArchitectureSpec):
    """A stem conv of ``width`` channels, then ``depth`` times ``op``, pooled and classified."""

    width: int
    op: str
    depth: int
    space = "stem_op"

    def to_dict(self):
        return {"space": self.space, "width": self.width, "op": self.op, "depth": self.depth}

    @classmethod
    def from_dict(cls, data):
        return cls(width=data["width"], op=data["op"], depth=data["depth"])

    def summary(self):
        return f"stem {self.width} > {self.depth} x {self.op}"


@spaces.register_space
class StemOpSpace(spaces.Space):
    name = "stem_op"

    def __init__(self, *, ops=("conv_3x3_selu", "max_pool_3x3")):
        self.ops = spaces.check_op_names(ops)

    def decide(self, decider):
        return StemOpSpec(
            width=decider.categorical("width", (4, 8)),
            op=decider.categorical("op", self.ops),
            depth=decider.integer("depth", 1, 2),
        )

    def to_dict(self):
        return {"space": self.name, "ops": list(self.ops)}


@models.register_builder(StemOpSpec)
def build_stem_op(spec, input_shape, num_classes):
    return nn.Sequential(
        nn.Conv2d(input_shape[0], spec.width, 3, padding=1),
        *(models.create_op(spec.op, spec.width, 1) for _ in range(spec.depth)),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(spec.width, num_classes),
    )


# --- what the package does with them ---------------------------------------------------------------


def test_registered_names_are_listed_and_checked_by_the_built_in_spaces():
    assert "conv_3x3_selu" in spaces.available_op_names("conv_*") and "conv_3x3_selu" in models.available_ops()
    assert spaces.available_spaces("stem*") == ["stem_op"]
    assert models.available_builders("stem*") == ["stem_op"]
    assert isinstance(spaces.create_space("stem_op"), StemOpSpace)
    # The built-in cell spaces take the new op by name, and build it.
    cell = spaces.CellSpace(max_blocks=1, ops=("conv_3x3_selu", "identity"), channels=4)
    spec = cell.spec_from_params({"num_blocks": 1, "block_0/input_a": 0, "block_0/op_a": "conv_3x3_selu",
                                  "block_0/input_b": 1, "block_0/op_b": "identity"})  # fmt: skip
    network = models.build_model(spec, input_shape=(1, 8, 8), num_classes=3)
    assert any(isinstance(m, nn.SELU) for m in network.modules())
    assert network(torch.zeros(2, 1, 8, 8)).shape == (2, 3)
    spaces.DAGCellSpace(max_nodes=4, max_edges=4, ops=("conv_3x3_selu", "maxpool3x3"))
    with pytest.raises(ValueError, match=r"ops: unknown op\(s\) \['conv_3x3_selo'\].*conv_3x3_selu"):
        spaces.CellSpace(ops=("conv_3x3_selo",))


def test_one_duplicate_name_policy_for_every_registry():
    def other(channels, stride):
        return nn.Identity()

    registrations = [
        lambda **kw: models.register_op("conv_3x3_selu", **kw)(other),
        lambda **kw: spaces.register_space(type("Other", (StemOpSpace,), {"name": "stem_op"}), **kw),
        lambda **kw: models.register_builder(StemOpSpec, **kw)(other),
        lambda **kw: samplers.register_sampler("evolution", other, **kw),
    ]
    for register in registrations:
        with pytest.raises(ValueError, match=r"already registered.*replace=True"):
            register()
    # Registering the same item again changes nothing (a module imported twice).
    models.register_op("conv_3x3_selu")(conv_3x3_selu)
    spaces.register_space(StemOpSpace)
    models.register_builder(StemOpSpec)(build_stem_op)
    for unknown, registry_listing in [
        (lambda: models.create_op("conv_3x3_selo", 4), "op must be one of"),
        (lambda: spaces.create_space("stem_opp"), "space must be one of"),
        (lambda: samplers.create_sampler("evolutoin"), "sampler must be one of"),
    ]:
        with pytest.raises(ValueError, match=registry_listing + r".*did you mean"):
            unknown()


def test_a_search_on_a_new_space_tracks_stores_ranks_and_exports(digits, mlflow_uri, tmp_path):
    (tmp_path / "artifacts").mkdir()
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path / "artifacts"))
    small = dataclasses.replace(digits, train_x=digits.train_x[:256], train_y=digits.train_y[:256])
    objective = objectives.ImageClassification(
        StemOpSpace(), small, epochs=1, batch_size=64, artifact_store=store, device="cpu"
    )
    tracker = MLflowTracker(tracking_uri=mlflow_uri, experiment_name="extending")
    study = optuna.create_study(
        directions=objective.directions,
        sampler=samplers.create_sampler("evolution", seed=0, population_size=3, sample_size=2),
        study_name="extending",
    )
    study.enqueue_trial({"width": 8, "op": "conv_3x3_selu", "depth": 2})
    study.optimize(objective, n_trials=5, callbacks=[tracker])

    trials = study.trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 5
    for trial in trials:
        spec = spaces.spec_from_dict(trial.user_attrs["spec"])
        assert isinstance(spec, StemOpSpec) and spec.op in ("conv_3x3_selu", "max_pool_3x3")
        names = {m.filename for m in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)}
        assert names == {"weights.npz", "network.png"}

    client = MlflowClient(tracking_uri=mlflow_uri)
    experiment = client.get_experiment_by_name("extending")
    runs = [r for r in client.search_runs([experiment.experiment_id]) if "mlflow.parentRunId" in r.data.tags]
    assert len(runs) == 5
    for run in runs:
        logged = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"spec.json", "network.png"} <= logged

    front = analysis.pareto_front(study)
    assert front and all(t.state == optuna.trial.TrialState.COMPLETE for t in front)
    best = front[0]
    written = analysis.export(study, best.number, str(tmp_path / "export"), artifact_store=store)
    assert json.loads((tmp_path / "export" / "spec.json").read_text())["spec"] == best.user_attrs["spec"]
    program = torch.export.load(str(tmp_path / "export" / "model.pt2")).module()
    batch = torch.from_numpy(np.asarray(digits.val_x[:4], dtype=np.float32))
    assert program(batch).shape == (4, 10)
    assert written["params"] == best.values[1]


def test_the_readmes_extending_snippet_runs_through_search_store_tracking_pareto_and_export(
    digits, mlflow_uri, tmp_path
):
    readme = (pathlib.Path(__file__).parent.parent / "README.md").read_text()
    section = readme[readme.index("### Extending") :]
    snippet = section[
        section.index("```python") + len("```python") : section.index("```\n", section.index("```python") + 9)
    ]
    names: dict = {}
    exec(compile(snippet, "README.md", "exec"), names)
    (tmp_path / "artifacts").mkdir()
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path / "artifacts"))
    objective = objectives.ImageClassification(
        names["OneOpSpace"](), digits, epochs=1, batch_size=64, artifact_store=store, device="cpu"
    )
    study = optuna.create_study(directions=objective.directions, sampler=samplers.create_sampler("metaqnn", seed=0))
    study.optimize(objective, n_trials=2, callbacks=[MLflowTracker(tracking_uri=mlflow_uri, experiment_name="readme")])
    assert {t.params["op"] for t in study.trials} == {"conv_3x3_elu", "identity"}  # no architecture twice
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    for trial in study.trials:
        names_stored = {m.filename for m in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)}
        assert names_stored == {"weights.npz", "network.png"}
    best = analysis.pareto_front(study)[0]
    analysis.export(study, best.number, str(tmp_path / "export"), artifact_store=store)
    assert (tmp_path / "export" / "model.pt2").stat().st_size > 0


def test_registration_mistakes_get_clear_errors_and_a_rerun_definition_is_accepted():
    with pytest.raises(ValueError, match=r"@register_op\('my_op'\)"):
        models.register_op(lambda channels, stride: nn.Identity())
    with pytest.raises(ValueError, match="space_type must be a Space subclass"):
        spaces.register_space(type("NotASpace", (), {"name": "not_a_space"}))
    with pytest.raises(ValueError, match="'space' tag"):
        spaces.register_spec(type("Untagged", (spaces.ArchitectureSpec,), {}))
    with pytest.raises(ValueError, match=r"data is not a valid ChainSpec \(KeyError"):
        spaces.spec_from_dict({"space": "chain"})
    with pytest.raises(ValueError, match=r"did you mean 'stem_op'.*register_spec"):
        spaces.spec_from_dict({"space": "stem_opp"})
    # The same class defined again (a notebook cell run twice) replaces the first quietly.
    namespace: dict = {}
    source = "class StemOpSpace(base):\n    name = 'stem_op'\n    def decide(self, decider): ...\n"
    exec(compile(source, "again", "exec"), {"base": spaces.Space, "__name__": __name__}, namespace)
    rerun = namespace["StemOpSpace"]
    rerun.__qualname__ = StemOpSpace.__qualname__
    assert spaces.register_space(replace=False)(rerun) is rerun
    spaces.register_space(StemOpSpace)  # and back
    assert isinstance(spaces.create_space("stem_op"), StemOpSpace)


def test_a_faulty_graph_costs_the_picture_not_the_weights_or_the_trial(digits, tmp_path, caplog):
    @dataclasses.dataclass(frozen=True)
    class BadGraphSpec(StemOpSpec):
        def graph(self):
            return spaces.ArchitectureGraph(nodes=("a", "b"), edges=((0, 2, ""),))

    class BadGraphSpace(StemOpSpace):
        def decide(self, decider):
            spec = super().decide(decider)
            return BadGraphSpec(width=spec.width, op=spec.op, depth=spec.depth)

    models.register_builder(BadGraphSpec, replace=True)(build_stem_op)
    (tmp_path / "artifacts").mkdir()
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path / "artifacts"))
    objective = objectives.ImageClassification(BadGraphSpace(), digits, epochs=1, artifact_store=store, device="cpu")
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=1)
    (trial,) = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert {m.filename for m in optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)} == {
        "weights.npz"
    }
    assert "could not be drawn" in caplog.text
