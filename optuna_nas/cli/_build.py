"""From the saved search settings to the space, objective and sampler of a study."""

from __future__ import annotations

import os
from typing import Any

import optuna

from optuna_nas import spaces
from optuna_nas.cli._common import CommandError
from optuna_nas.samplers import available_samplers
from optuna_nas.samplers import create_sampler

#: Sampler names the command knows, including controllers that are planned but not built yet.
PLANNED_SAMPLERS = ("reinforce", "enas", "pnas", "evolution-guided")


def make_space(config: dict[str, Any]) -> spaces.Space:
    """The space of the saved settings; a chain follows the dataset's image size (``input_shape``)."""
    kind = config["space"]
    if kind == "chain":
        return spaces.ChainSpace(
            max_layers=config["max_layers"],
            filters=tuple(config["filters"]),
            input_size=min(config["input_shape"][1:]),
        )
    if kind == "cell":
        return spaces.CellSpace(max_blocks=config["max_blocks"], channels=config["channels"])
    return spaces.NASBench201Space()


def make_objective(config: dict[str, Any]) -> tuple[Any, spaces.Space]:
    """The objective and space of the saved settings (records the dataset's ``input_shape`` in them)."""
    from optuna_nas import objectives

    if config.get("benchmark") == "nasbench201":
        objective = objectives.NASBench201(
            config["table"], config["dataset"], multi_objective=not config["single_objective"]
        )
        return objective, objective.space
    from optuna_nas import data

    dataset = data.load(config["dataset"], root=config.get("data_root"))
    config["input_shape"] = list(dataset.input_shape)
    space = make_space(config)
    store = None
    if config.get("artifact_dir"):
        os.makedirs(config["artifact_dir"], exist_ok=True)
        store = optuna.artifacts.FileSystemArtifactStore(config["artifact_dir"])
    objective = objectives.ImageClassification(
        space,
        dataset,
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        learning_rate=config["learning_rate"],
        seed=config["seed"],
        artifact_store=store,
        objectives=("accuracy",) if config["single_objective"] else ("accuracy", "params", "flops"),
    )
    return objective, space


def make_sampler(name: str, seed: int, space: spaces.Space) -> optuna.samplers.BaseSampler:
    if name in PLANNED_SAMPLERS and name not in available_samplers():
        raise CommandError(f"--sampler {name!r} is not available yet; available: {available_samplers()}")
    options: dict[str, Any] = {}
    if name == "metaqnn" and isinstance(space, spaces.ChainSpace):
        options["state"] = space.metaqnn_state
    try:
        return create_sampler(name, seed=seed, **options)
    except ValueError as error:
        raise CommandError(f"--{error}") from None
