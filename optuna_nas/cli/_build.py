"""From the saved search settings to the space, objective and sampler of a study."""

from __future__ import annotations

import os
from typing import Any

import optuna

from optuna_nas import spaces
from optuna_nas.cli._common import CommandError
from optuna_nas.samplers import create_sampler

#: Samplers made for the space they search: they are given it.
SPACE_SAMPLERS = ("pnas", "evolution-guided")
#: Samplers that take ``--selection`` (aging evolution's parent selection).
EVOLUTION_SAMPLERS = ("evolution", "evolution-guided")
#: The pruners of ``--pruner``.
PRUNERS = ("none", "learning-curve")
#: The sampler whose objective is ENAS's shared weights (:class:`~optuna_nas.objectives.SharedWeights`).
ENAS = "enas"
#: Spaces with a supernet to share weights in, for ``--sampler enas``.
ENAS_SPACES = ("cell", "chain")


def make_space(config: dict[str, Any]) -> spaces.Space:
    """The space of the saved settings; a chain follows the dataset's image size (``input_shape``)."""
    kind = config["space"]
    if kind == "chain":
        return spaces.ChainSpace(
            max_layers=config["max_layers"],
            filters=tuple(config["filters"]),
            input_size=min(config["input_shape"][1:]),
            skip_connections=bool(config.get("skip_connections", False)),
        )
    if kind == "cell":
        return spaces.CellSpace(max_blocks=config["max_blocks"], channels=config["channels"])
    if kind == "dag":
        return spaces.DAGCellSpace(
            max_nodes=config.get("max_nodes", 7), max_edges=config.get("max_edges", 9), stem_channels=config["channels"]
        )
    return spaces.NASBench201Space()


def make_objective(config: dict[str, Any], *, take_over: bool = False) -> tuple[Any, spaces.Space]:
    """The objective and space of the saved settings (records the dataset's ``input_shape`` in them):
    ENAS's :class:`~optuna_nas.objectives.SharedWeights` for ``--sampler enas`` (``take_over`` the
    study from an owner that ended without releasing it), else ``ImageClassification``.
    """
    from optuna_nas import objectives

    if config.get("benchmark") == "nasbench201":
        table = objectives.NASBench201(
            config["table"], config["dataset"], multi_objective=not config["single_objective"]
        )
        return table, table.space
    from optuna_nas import data

    dataset = data.load(config["dataset"], root=config.get("data_root"))
    config["input_shape"] = list(dataset.input_shape)
    space = make_space(config)
    store = None
    if config.get("artifact_dir"):
        os.makedirs(config["artifact_dir"], exist_ok=True)
        store = optuna.artifacts.FileSystemArtifactStore(config["artifact_dir"])
    metrics = ("accuracy",) if config["single_objective"] else ("accuracy", "params", "flops")
    if config.get("sampler") == ENAS:
        shared = objectives.SharedWeights(
            space,
            dataset,
            batches_per_trial=config.get("batches_per_trial", 20),
            batch_size=config["batch_size"],
            seed=config["seed"],
            artifact_store=store,
            objectives=metrics,
            take_over=take_over,
        )
        return shared, space
    curve_pruner = None
    if config.get("pruner", "none") == "learning-curve":
        from optuna_nas.pruners import LearningCurvePruner

        curve_pruner = LearningCurvePruner(seed=config["seed"])
    objective = objectives.ImageClassification(
        space,
        dataset,
        curve_pruner=curve_pruner,
        epochs=config["epochs"],
        batch_size=config["batch_size"],
        learning_rate=config["learning_rate"],
        seed=config["seed"],
        artifact_store=store,
        objectives=metrics,
    )
    return objective, space


#: Samplers of Optuna's, which take neither ``--reward`` nor ``--selection``.
OPTUNA_SAMPLERS = ("random", "tpe", "nsga2")


def sampler_options(
    name: str, *, reward: str | None, selection: str | None, directions: list[str] | None = None
) -> dict[str, Any]:
    """The sampler's ``reward`` and ``selection`` arguments from their command-line form, checked
    (against the study's ``directions`` too, when given).

    Raises:
        CommandError: An option does not apply to the sampler or the study, or is malformed.
    """
    from optuna.study import StudyDirection

    from optuna_nas.samplers import rewards

    options: dict[str, Any] = {}
    if reward is not None:
        if name in OPTUNA_SAMPLERS:
            raise CommandError(f"--reward applies to the project's samplers, not to Optuna's {name!r}")
        try:
            options["reward"] = rewards.from_string(reward)
        except ValueError as error:
            raise CommandError(f"--{error}") from None
        if directions is not None:
            signs = [StudyDirection.MAXIMIZE if d == "maximize" else StudyDirection.MINIMIZE for d in directions]
            try:  # a reward that does not fit the objectives fails here, not in every trial
                options["reward"]([1.0] * len(signs), signs)
            except (ValueError, IndexError) as error:
                raise CommandError(
                    f"--reward {reward!r} does not fit a study of {len(signs)} objectives: {error}"
                ) from None
    if selection is not None:
        if name not in EVOLUTION_SAMPLERS:
            raise CommandError(f"--selection applies to --sampler evolution or evolution-guided, not {name!r}")
        options["selection"] = selection
    return options


def saved_sampler_options(config: dict[str, Any]) -> tuple[str | None, str | None]:
    """``(reward, selection)`` of saved search settings. Settings saved before these options
    existed ran with the first objective as reward and reward selection, and keep them.
    """
    reward = config["reward"] if "reward" in config else "first"
    selection = config["selection"] if "selection" in config else "reward"
    if config.get("sampler") in OPTUNA_SAMPLERS:
        reward = None
    if config.get("sampler") not in EVOLUTION_SAMPLERS:
        selection = None
    return reward, selection


def make_sampler(
    name: str,
    seed: int,
    space: spaces.Space,
    *,
    reward: str | None = None,
    selection: str | None = None,
    directions: list[str] | None = None,
) -> optuna.samplers.BaseSampler:
    """The sampler of the saved settings: ``reward`` in :func:`~optuna_nas.samplers.rewards.from_string`
    form and ``selection`` (evolution) as given on the command line, ``None`` for the sampler's default.

    Raises:
        CommandError: The sampler is unknown or not built yet, or an option does not apply to it or
            is malformed.
    """
    options: dict[str, Any] = sampler_options(name, reward=reward, selection=selection, directions=directions)
    if name == "pnas" and not isinstance(space, (spaces.CellSpace, spaces.NASBench201Space)):
        raise CommandError(f"--sampler pnas grows cells: use --space cell or nb201 (or a benchmark), not {space.name}")
    if name in SPACE_SAMPLERS:
        options["space"] = space
    if name == ENAS:
        # ENAS's controller samples a child again when it likes it: each visit trains the shared weights.
        options["avoid_duplicates"] = False
    if name == "metaqnn" and isinstance(space, spaces.ChainSpace):
        options["state"] = space.metaqnn_state
    if name not in (*OPTUNA_SAMPLERS, "pnas") and isinstance(space, (spaces.DAGCellSpace, spaces.NASBench201Space)):
        # Isomorphic DAG cells, and NAS-Bench-201 cells that differ only on edges no input-to-output
        # path crosses, are one network: train each once (PNAS keys its cells by the space itself).
        options["dedup_key"] = space.dedup_key
    try:
        return create_sampler(name, seed=seed, **options)
    except ValueError as error:
        raise CommandError(f"--{error}") from None
