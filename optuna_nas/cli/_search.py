"""``optuna-nas search`` and ``optuna-nas worker``: run or join a study."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import filecmp
import json
import math
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable
from collections.abc import Iterator
from types import FrameType
from typing import Any

import optuna

from optuna_nas.cli._build import ENAS
from optuna_nas.cli._build import ENAS_SPACES
from optuna_nas.cli._build import PRUNERS
from optuna_nas.cli._build import make_objective
from optuna_nas.cli._build import make_sampler
from optuna_nas.cli._build import sampler_options
from optuna_nas.cli._build import saved_sampler_options
from optuna_nas.cli._common import CONFIG_ATTR
from optuna_nas.cli._common import DEFAULT_ARTIFACT_DIR
from optuna_nas.cli._common import DEFAULT_MLFLOW_URI
from optuna_nas.cli._common import SETTINGS_CHANGES_ATTR
from optuna_nas.cli._common import CommandError
from optuna_nas.cli._common import NotReady
from optuna_nas.cli._common import absolute_folder
from optuna_nas.cli._common import absolute_mlflow_uri
from optuna_nas.cli._common import create_or_load_study
from optuna_nas.cli._common import given_locations
from optuna_nas.cli._common import load_study
from optuna_nas.cli._common import open_storage
from optuna_nas.cli._common import read_config
from optuna_nas.cli._common import retry_first_use
from optuna_nas.cli._common import study_locations
from optuna_nas.cli._recover import FAIL_REASON_ATTR
from optuna_nas.cli._recover import fail_gone_trials
from optuna_nas.objectives import DEFAULT_TABLE

#: Seconds between a running trial's heartbeats on RDB storages, unless ``--heartbeat-interval`` says.
DEFAULT_HEARTBEAT_INTERVAL = 60


def add_heartbeat_argument(parser: argparse.ArgumentParser) -> None:
    """``--heartbeat-interval``, for ``search`` and ``worker``."""
    parser.add_argument(
        "--heartbeat-interval",
        type=int,
        default=DEFAULT_HEARTBEAT_INTERVAL,
        help="seconds between a running trial's heartbeats on an RDB storage (sqlite, postgresql); a trial "
        "silent for twice as long (the grace period) is taken as killed and failed by the next worker that "
        "starts or begins a trial; 0: no heartbeat. A journal storage and the gRPC proxy have no heartbeat: "
        "there, optuna-nas recover fails a killed worker's trials",
    )


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--space",
        choices=("chain", "cell", "nb201", "dag"),
        default="chain",
        help="search space: layer-by-layer CNNs (MetaQNN), PNAS cells, the NAS-Bench-201 cell, or NAS-Bench-101 "
        "cells (dag)",
    )
    parser.add_argument(
        "--sampler",
        default="metaqnn",
        help="the controller: random, tpe, nsga2, metaqnn, evolution, evolution-guided (evolution whose children "
        "an accuracy predictor picks), pnas (progressive cells, --space cell or nb201), reinforce, enas (ENAS: the "
        "children share one supernet's weights, trained in this process, with --space cell or chain - a chain "
        "with skip connections; its controller may sample a child again, as ENAS's, and each visit trains the "
        "weights further; then optuna-nas derive)",
    )
    parser.add_argument(
        "--pruner",
        choices=PRUNERS,
        default="none",
        help="stop trainings early: learning-curve predicts a network's final accuracy from its first epochs "
        "and stops it when confidently below the best (not with --benchmark or --sampler enas)",
    )
    parser.add_argument(
        "--reward",
        default=None,
        help="what our samplers learn from: first (the first objective), dominance (a Pareto-rank reward), "
        "linear:W1,W2,... (weights per objective), mnas:TARGET (MnasNet's soft FLOPs target) "
        "(default: dominance with several objectives; evolution then selects along the Pareto front)",
    )
    parser.add_argument(
        "--selection",
        choices=("reward", "pareto"),
        default=None,
        help="how evolution picks parents (default: pareto with several objectives and no --reward, else reward)",
    )
    parser.add_argument(
        "--dataset",
        default="mnist5k",
        help="the images: mnist5k, digits, mnist, fashion_mnist, cifar10; with --benchmark: cifar10, cifar100, "
        "imagenet16",
    )
    parser.add_argument(
        "--benchmark",
        choices=("nasbench201",),
        default=None,
        help="score cells from the NAS-Bench-201 table instead of training (default: train each network)",
    )
    parser.add_argument(
        "--table",
        default=None,
        help="CSV file of the NAS-Bench-201 table, with --benchmark (default: the one shipped with the package)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="folder of the torchvision datasets (mnist, fashion_mnist, cifar10; default: ~/.cache/optuna_nas/data)",
    )
    parser.add_argument("--n-trials", type=int, default=20, help="trials this process runs")
    parser.add_argument("--n-jobs", type=int, default=1, help="trials this process runs at once, in threads")
    parser.add_argument(
        "--storage",
        default="sqlite:///optuna_nas.db",
        help="where the study is kept: a URL (sqlite:///nas.db, postgresql://..., "
        "grpc://HOST:PORT for a gRPC storage proxy) or a journal file (.log, .journal)",
    )
    parser.add_argument("--study-name", default="optuna-nas", help="the study; an existing one is resumed")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per network (not with --sampler enas)")
    parser.add_argument("--batch-size", type=int, default=128, help="images per training step")
    parser.add_argument(
        "--learning-rate", type=float, default=1e-3, help="Adam's learning rate (not with --sampler enas)"
    )
    parser.add_argument(
        "--batches-per-trial",
        type=int,
        default=20,
        help="with --sampler enas: mini-batches the shared weights train with each trial's child",
    )
    parser.add_argument("--max-layers", type=int, default=6, help="most layers in a chain, with --space chain")
    parser.add_argument(
        "--filters", default="16,32,64", help="conv filter counts to choose from, comma-separated, with --space chain"
    )
    parser.add_argument("--max-blocks", type=int, default=3, help="most blocks in a cell, with --space cell")
    parser.add_argument(
        "--channels",
        type=int,
        default=8,
        help="channels of the first stage, doubled at each reduction, with --space cell or dag",
    )
    parser.add_argument("--max-nodes", type=int, default=7, help="most nodes of a cell, with --space dag")
    parser.add_argument("--max-edges", type=int, default=9, help="most edges of a cell, with --space dag")
    parser.add_argument(
        "--single-objective",
        action="store_true",
        help="optimise accuracy only, not also params and FLOPs (pruners work)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampler and of each network's training")
    parser.add_argument(
        "--mlflow-uri",
        default=DEFAULT_MLFLOW_URI,
        help="MLflow tracking URI; a relative SQLite file or folder is saved absolute, for workers elsewhere",
    )
    parser.add_argument("--no-mlflow", action="store_true", help="log nothing to MLflow")
    parser.add_argument(
        "--artifact-dir",
        default=DEFAULT_ARTIFACT_DIR,
        help="folder where trained weights and network pictures are kept ('' to keep none)",
    )
    parser.add_argument("--no-progress", action="store_true", help="show no progress bar")
    add_heartbeat_argument(parser)
    add_take_over_argument(parser)
    parser.add_argument(
        "--force-settings",
        action="store_true",
        help="resume a study although these settings differ from the ones it was searched with (or it has "
        "trials but none saved); the study then keeps these, and records each change with its old and new "
        f"value in its user attr {SETTINGS_CHANGES_ATTR!r}. Its objectives and space cannot change",
    )


def add_take_over_argument(parser: argparse.ArgumentParser) -> None:
    """``--take-over``, for ``search``, ``worker`` and ``derive`` on an ENAS study."""
    parser.add_argument(
        "--take-over",
        action="store_true",
        help="ENAS study: go on although the study names another process as the owner of its shared weights "
        "(one that ended without releasing them, killed or lost), from their last saved state",
    )


def _heartbeat_interval(args: argparse.Namespace) -> int | None:
    """``--heartbeat-interval`` checked, ``None`` for no heartbeat."""
    if args.heartbeat_interval < 0:
        raise CommandError(
            f"--heartbeat-interval must be a whole number of seconds >= 0 (0: no heartbeat), got "
            f"{args.heartbeat_interval}"
        )
    return args.heartbeat_interval or None


#: The least value of each whole-number option of ``search`` (the space's and training's), checked
#: whatever the space, sampler or benchmark, as every option is.
_SEARCH_MINIMUMS = {
    "epochs": 1,
    "batch_size": 1,
    "batches_per_trial": 1,
    "max_layers": 1,
    "max_blocks": 1,
    "channels": 1,
    "max_nodes": 2,
    "max_edges": 1,
}


def _config(args: argparse.Namespace) -> dict[str, Any]:
    try:
        filters = [int(f) for f in args.filters.split(",")]
    except ValueError:
        raise CommandError(f"--filters must be comma-separated integers, got {args.filters!r}") from None
    for name, minimum in _SEARCH_MINIMUMS.items():
        if getattr(args, name) < minimum:
            raise CommandError(f"--{name.replace('_', '-')} must be an integer >= {minimum}, got {getattr(args, name)}")
    if not math.isfinite(args.learning_rate) or args.learning_rate <= 0:
        raise CommandError(f"--learning-rate must be a finite number > 0, got {args.learning_rate}")
    if args.table is not None and not args.table.strip():
        raise CommandError(f"--table must name a CSV file of the NAS-Bench-201 table, got {args.table!r}")
    if args.n_trials < 1:
        raise CommandError(f"--n-trials must be >= 1, got {args.n_trials}")
    if args.n_jobs < 1:
        raise CommandError(f"--n-jobs must be >= 1, got {args.n_jobs}")
    _heartbeat_interval(args)
    space = "nb201" if args.benchmark else args.space
    sampler_options(args.sampler, reward=args.reward, selection=args.selection)  # checked before any work
    if args.sampler == ENAS:
        _check_enas(args, space)
    if args.sampler == "pnas" and space not in ("cell", "nb201"):
        raise CommandError(f"--sampler pnas grows cells: use --space cell or nb201 (or a benchmark), not {space}")
    if args.pruner != "none" and (args.benchmark or args.sampler == ENAS):
        what = f"--benchmark {args.benchmark}" if args.benchmark else "--sampler enas"
        raise CommandError(f"--pruner {args.pruner} stops trainings; {what} trains none")
    # Places are saved absolute, so a worker started in another folder finds the same ones.
    artifact_dir = None if args.benchmark or not args.artifact_dir else args.artifact_dir
    return {
        "space": space,
        "sampler": args.sampler,
        "reward": args.reward,
        "selection": args.selection,
        "dataset": args.dataset,
        "benchmark": args.benchmark,
        "table": os.path.abspath(args.table) if args.table else DEFAULT_TABLE,
        "data_root": None if args.data_root is None else absolute_folder(args.data_root, "--data-root"),
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_layers": args.max_layers,
        "filters": filters,
        "max_blocks": args.max_blocks,
        "channels": args.channels,
        "max_nodes": args.max_nodes,
        "max_edges": args.max_edges,
        "single_objective": args.single_objective,
        "pruner": args.pruner,
        "seed": args.seed,
        "batches_per_trial": args.batches_per_trial,
        "skip_connections": args.sampler == ENAS and space == "chain",  # ENAS's macro space
        "artifact_dir": None if artifact_dir is None else absolute_folder(artifact_dir, "--artifact-dir", create=True),
        "mlflow_uri": None if args.no_mlflow else absolute_mlflow_uri(args.mlflow_uri),
    }


def _check_enas(args: argparse.Namespace, space: str) -> None:
    """The options ``--sampler enas`` takes, checked."""
    if args.benchmark:
        raise CommandError(
            f"--benchmark {args.benchmark} does not apply to --sampler enas, which trains shared weights"
        )
    if space not in ENAS_SPACES:
        raise CommandError(f"--space {space} has no supernet for --sampler enas; use --space cell or chain")
    if not args.artifact_dir:
        raise CommandError("--artifact-dir '': --sampler enas saves its shared weights there; give a folder")
    if args.batches_per_trial < 1:
        raise CommandError(f"--batches-per-trial must be >= 1, got {args.batches_per_trial}")


def search(args: argparse.Namespace) -> int:
    """Run or resume a study.

    A study that exists already is resumed only with the settings it was searched with
    (:func:`settle_settings`), or with ``--force-settings``; nothing is written to it otherwise.
    """
    config = _config(args)
    args.mlflow_uri, args.no_mlflow = config["mlflow_uri"], config["mlflow_uri"] is None
    objective, space = _make_objective(config, take_over=args.take_over)
    directions = list(objective.directions)
    sampler = make_sampler(
        config["sampler"],
        config["seed"],
        space,
        reward=config["reward"],
        selection=config["selection"],
        directions=directions,
    )
    storage = open_storage(args.storage, heartbeat_interval=_heartbeat_interval(args))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    run = _Run(command="search", directions=directions, metric_names=list(objective.metric_names))

    def prepare(study: optuna.Study) -> dict[str, Any]:
        return settle_settings(study, config, trial_settings(config), run, force=args.force_settings)

    study, settings = create_or_load_study(
        args.storage, storage, args.study_name, directions=directions, sampler=sampler, prepare=prepare
    )
    silent = _SilentTrials(storage, study)
    reward, selection = saved_sampler_options(settings)
    study.sampler = make_sampler(
        settings["sampler"], config["seed"], space, reward=reward, selection=selection, directions=directions
    )
    return _run(study, objective, args, silent)


@dataclasses.dataclass(frozen=True)
class _Run:
    """What a ``search`` or ``worker`` run will do to a study, for the checks of its settings.

    Attributes:
        command: ``"search"`` or ``"worker"``.
        directions: The directions of the run's objective, ``"maximize"`` or ``"minimize"`` each.
        metric_names: The names of its objective's values.
    """

    command: str
    directions: list[str]
    metric_names: list[str]


#: The saved settings that say what a trial is, each with the option that sets it, in the order
#: they are checked. The seed is not one: each process may have its own (``worker --seed``, as
#: parallel workers want, so that they do not draw the same architectures), and a trial's seed
#: comes from it and the trial's number. The places (``--data-root``, ``--artifact-dir``,
#: ``--mlflow-uri``) are not either: they are where things are, not what they are.
TRIAL_SETTINGS = {
    "space": "--space",
    "benchmark": "--benchmark",
    "dataset": "--dataset",
    "table": "--table",
    "single_objective": "--single-objective",
    "sampler": "--sampler",
    "reward": "--reward",
    "selection": "--selection",
    "epochs": "--epochs",
    "learning_rate": "--learning-rate",
    "batches_per_trial": "--batches-per-trial",
    "batch_size": "--batch-size",
    "max_layers": "--max-layers",
    "filters": "--filters",
    "max_blocks": "--max-blocks",
    "max_nodes": "--max-nodes",
    "max_edges": "--max-edges",
    "channels": "--channels",
    "pruner": "--pruner",
}

# What --force-settings cannot change: another space would make the study's trials another kind of
# thing (as other objectives or ENAS's weights would; those are checked apart).
_FIXED_SETTINGS = ("space",)

_SPACE_OPTIONS = {
    "chain": ("max_layers", "filters"),
    "cell": ("max_blocks", "channels"),
    "dag": ("max_nodes", "max_edges", "channels"),
}


def trial_settings(config: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``config`` (the search's, given or defaulted) that say what its trials are
    (:data:`TRIAL_SETTINGS`), those that apply to its space, objective and sampler only;
    ``--reward`` and ``--selection`` only where given (else the study's own are kept).
    """
    keys = ["space", "benchmark", "dataset", "single_objective", "sampler", "reward", "selection"]
    if config["benchmark"]:
        keys.append("table")
    else:
        keys += ["batches_per_trial"] if config["sampler"] == ENAS else ["epochs", "learning_rate", "pruner"]
        keys.append("batch_size")
        keys += _SPACE_OPTIONS.get(config["space"], ())
    settings = {key: config[key] for key in keys}
    for key in ("reward", "selection"):
        if settings[key] is None:
            del settings[key]
    return settings


def settle_settings(
    study: optuna.Study, config: dict[str, Any], given: dict[str, Any], run: _Run, *, force: bool
) -> dict[str, Any]:
    """The settings a run on ``study`` uses, once checked against those the study was searched with.

    A study without saved settings gets ``config``: a new one, or one made elsewhere with the same
    directions and no trial yet (processes starting together see each other's study so). A study
    with saved settings keeps them, when each setting ``given`` is the saved one.

    Args:
        study: The study, created or loaded.
        config: The run's settings, all of them (``search``'s), saved in a study without any.
        given: The settings to check (:func:`trial_settings`), by key; an absent key is not checked.
        run: The run's command and the directions of its objective.
        force: ``--force-settings``: a setting that differs is changed, and the change recorded.

    Returns:
        The saved settings (the given ones in a study that had none, or after ``force``).

    Raises:
        CommandError: The study's directions are not the run's; it has trials but no saved settings;
            or (unless ``force``) a given setting is not the saved one. Nothing is written then.
    """
    # The trials first: a study that has none while its settings are missing is still being made.
    trials = len(study.get_trials(deepcopy=False))
    saved_text = study.user_attrs.get(CONFIG_ATTR)
    if saved_text is None:
        _check_directions(study, run, saved=None)
        if trials and not force:
            raise CommandError(
                f"study {study.study_name!r} has {trials} trials but no saved settings (it was not made by "
                "optuna-nas search): pass --force-settings to search it with these settings, or use another "
                "--study-name"
            )
        changes = {key: {"saved": None, "given": value} for key, value in given.items()} if trials else {}
        _save_settings(study, config, changes, run)
        return _settled(study, config)
    saved: dict[str, Any] = json.loads(saved_text)
    _check_directions(study, run, saved=saved)
    if (saved.get("sampler") == ENAS) != (given.get("sampler", saved.get("sampler")) == ENAS):
        raise CommandError(
            f"--sampler {given['sampler']}: study {study.study_name!r} was searched with --sampler "
            f"{saved.get('sampler')}, and ENAS's shared weights go with --sampler enas only"
        )
    differences = _differences(saved, given)
    for key in differences:
        if key in _FIXED_SETTINGS or not force:
            raise CommandError(
                _difference_message(study.study_name, key, saved, given, forceable=key not in _FIXED_SETTINGS)
            )
    if not differences:
        return saved
    reward, selection = saved_sampler_options(saved)
    new = {**config, "reward": given.get("reward", reward), "selection": given.get("selection", selection)}
    changes = {key: {"saved": _saved_value(saved, key), "given": given[key]} for key in differences}
    _save_settings(study, new, changes, run)
    return new


def _settled(study: optuna.Study, config: dict[str, Any]) -> dict[str, Any]:
    """The study's saved settings after ``config`` was saved; refused when another process saved
    other ones at the same moment (only one of two writes stays).
    """
    saved: dict[str, Any] = json.loads(study.user_attrs[CONFIG_ATTR])
    differences = _differences(saved, trial_settings(config))
    if differences:
        raise CommandError(
            _difference_message(study.study_name, differences[0], saved, trial_settings(config), forceable=True)
        )
    return saved


def _check_directions(study: optuna.Study, run: _Run, *, saved: dict[str, Any] | None) -> None:
    """Refuses a study whose directions are not those of the run's objective: they cannot change."""
    kept = [d.name.lower() for d in study.directions]
    if kept == run.directions:
        return
    names = study.metric_names
    theirs = _directions_text(kept, names)
    ours = _directions_text(run.directions, run.metric_names)
    if saved is None:
        lead = f"study {study.study_name!r} was not made by optuna-nas search: it has {theirs}, this {run.command}"
    elif run.command == "worker":
        lead = f"study {study.study_name!r} has {theirs}, but its saved settings make"
    else:
        lead = (
            f"{'--single-objective' if len(run.directions) == 1 else 'without --single-objective'}: "
            f"study {study.study_name!r} has {theirs}, this search"
        )
    raise CommandError(f"{lead} {ours}; a study's objectives cannot change: use another --study-name")


def _directions_text(directions: list[str], names: list[str] | None) -> str:
    """``"3 objectives (maximize accuracy, minimize params, minimize flops)"``."""
    named = [f"{d} {n}" for d, n in zip(directions, names, strict=True)] if names else directions
    return f"{len(directions)} objective{'s' if len(directions) > 1 else ''} ({', '.join(named)})"


def _saved_value(saved: dict[str, Any], key: str) -> Any:
    """A saved setting, ``--reward`` and ``--selection`` as older settings meant them."""
    if key in ("reward", "selection"):
        return dict(zip(("reward", "selection"), saved_sampler_options(saved), strict=True))[key]
    return saved.get(key)


def _differences(saved: dict[str, Any], given: dict[str, Any]) -> list[str]:
    """The keys of ``given`` whose value is not the saved one, in :data:`TRIAL_SETTINGS` order.
    Settings saved before a key existed are not checked on it (other than the sampler's options).
    """
    keys = [key for key in TRIAL_SETTINGS if key in given and (key in saved or key in ("reward", "selection"))]
    return [key for key in keys if not _same(key, _saved_value(saved, key), given[key])]


def _same(key: str, saved: Any, given: Any) -> bool:
    if key == "table" and isinstance(saved, str) and isinstance(given, str) and saved != given:
        # The same table elsewhere (the package installed in another place, a copy) is the same.
        return os.path.isfile(saved) and os.path.isfile(given) and filecmp.cmp(saved, given, shallow=False)
    return bool(saved == given)


def _difference_message(
    study_name: str, key: str, saved: dict[str, Any], given: dict[str, Any], *, forceable: bool
) -> str:
    option = TRIAL_SETTINGS[key]
    value, kept = given[key], _saved_value(saved, key)
    if value is None or value is False:
        lead = f"without {option}"
    elif value is True:
        lead = option
    else:
        lead = f"{option} {_shown(value)!r}"
    if kept is None and key in ("reward", "selection"):
        tail = "with the sampler's default"
    elif kept is None or kept is False:
        tail = f"without {option}"
    elif kept is True:
        tail = f"with {option}"
    else:
        tail = f"with {_shown(kept)!r}"
    advice = "pass --force-settings to change the study's settings" if forceable else "use another --study-name"
    return f"{lead}: study {study_name!r} was searched {tail}; {advice}"


def _shown(value: Any) -> Any:
    """A setting as it is written on the command line (``--filters 16,32,64``)."""
    return ",".join(str(v) for v in value) if isinstance(value, list) else value


def _save_settings(study: optuna.Study, config: dict[str, Any], changes: dict[str, Any], run: _Run) -> None:
    """Saves ``config`` as the study's settings, recording ``changes`` (``--force-settings``) first."""
    if changes:
        record = {
            "at": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": run.command,
            "changes": changes,
        }
        study.set_user_attr(SETTINGS_CHANGES_ATTR, [*study.user_attrs.get(SETTINGS_CHANGES_ATTR, []), record])
    study.set_user_attr(CONFIG_ATTR, json.dumps(config))
    if study.metric_names is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(run.metric_names)


def worker(args: argparse.Namespace) -> int:
    """Join an existing study with the settings it was made with.

    The MLflow tracking URI, data root and artifact folder are the study's, as its search saved
    them, unless given; what is given is checked before the study is opened.
    """
    heartbeat_interval = _heartbeat_interval(args)
    given = given_locations(args, create_artifact_dir=True)
    storage = open_storage(args.storage, must_exist=True, heartbeat_interval=heartbeat_interval)
    study, config = retry_first_use(lambda: _study_with_settings(args, storage))
    if args.seed is not None:
        config["seed"] = args.seed
    places = study_locations(study, given)
    try:
        if places.artifact_dir is not None and "artifact_dir" not in given:
            absolute_folder(places.artifact_dir, "the study's artifact folder", create=True)
        if places.mlflow_uri is not None and "mlflow_uri" not in given:
            absolute_mlflow_uri(places.mlflow_uri, "the study's MLflow URI")
    except CommandError as error:
        raise CommandError(f"{error} Pass --artifact-dir, --mlflow-uri or --no-mlflow to use other places.") from None
    config.update(data_root=places.data_root, artifact_dir=places.artifact_dir)
    if config.get("benchmark"):
        config["table"] = _saved_table(study, config)
    args.mlflow_uri, args.no_mlflow = places.mlflow_uri, places.mlflow_uri is None
    objective, space = _make_objective(config, take_over=args.take_over)
    run = _Run(command="worker", directions=list(objective.directions), metric_names=list(objective.metric_names))
    _check_directions(study, run, saved=config)
    silent = _SilentTrials(storage, study)
    reward, selection = saved_sampler_options(config)
    study.sampler = make_sampler(
        config["sampler"], config["seed"], space, reward=reward, selection=selection, directions=run.directions
    )
    return _run(study, objective, args, silent)


def _saved_table(study: optuna.Study, config: dict[str, Any]) -> str:
    """The benchmark table the study's settings name, checked as a saved place is
    (:func:`~optuna_nas.cli._common.saved_locations`): ``search`` saves it absolute, and it must be
    a file. A relative one saved by an older version is taken from the current folder.

    Raises:
        CommandError: The setting is not a path, is relative in settings that record their places,
            or names no file.
    """
    table = config.get("table")
    if table is None:
        return DEFAULT_TABLE
    recorded = "mlflow_uri" in config
    problem = None
    if not isinstance(table, str) or not table:
        problem = "is not a path"
    elif recorded and not os.path.isabs(table):
        problem = "is a relative path (its search saves absolute ones: were the settings edited?)"
    elif not os.path.isfile(table):
        problem = "names no file here"
    if problem is not None:
        raise CommandError(f"study {study.study_name!r}: its saved setting table {table!r} {problem}.")
    return os.path.abspath(str(table))


def _study_with_settings(
    args: argparse.Namespace, storage: optuna.storages.BaseStorage
) -> tuple[optuna.Study, dict[str, Any]]:
    """The study ``worker`` joins and its saved settings.

    Raises:
        NotReady: The study has neither settings nor trials yet: the search making it may not have
            saved its settings yet (:func:`~optuna_nas.cli._common.retry_first_use` asks again).
        CommandError: No such study, or one with trials but no saved settings.
    """
    study = load_study(args.storage, args.study_name, storage=storage)
    trials = len(study.get_trials(deepcopy=False))
    try:
        return study, read_config(study)
    except CommandError as error:
        if trials:
            raise
        raise NotReady(str(error)) from None


def _make_objective(config: dict[str, Any], *, take_over: bool = False) -> tuple[Any, Any]:
    try:
        return make_objective(config, take_over=take_over)
    except (ValueError, OSError) as error:  # bad settings, missing data or table
        raise CommandError(str(error).splitlines()[0] if str(error) else type(error).__name__) from None


class Stopped(KeyboardInterrupt):
    """Raised in the trials of a run told to stop by a signal (SIGTERM).

    A :class:`KeyboardInterrupt`, so Optuna fails the trial that raises it and ends the run, as on
    Ctrl-C; the command then exits with status 128 + the signal's number (143 for SIGTERM).
    """

    def __init__(self, signum: signal.Signals) -> None:
        super().__init__(f"stopped by {signum.name}")
        self.signum = signum

    @property
    def exit_status(self) -> int:
        return 128 + int(self.signum)


class _StopOnSignal:
    """Stops a run on ``signum`` as Ctrl-C does, at points where stopping is safe.

    SIGTERM is what ``timeout``, docker, Kubernetes and Slurm send before they kill. The handler
    only records the request: writes to the storage under way are never cut in half. A trial in
    training stops at its next progress callback (at each epoch and about every 2 s inside one) by
    raising :class:`Stopped`, so it fails with ``fail_reason`` "stopped by SIGTERM"; a trial about to
    start fails at once with the same reason; one that needs no training (the tabular benchmark)
    ends as it would, and the run stops after it. Trials in other threads (``--n-jobs``) stop the
    same way.
    """

    def __init__(self, signum: signal.Signals) -> None:
        self.signum = signum
        self.requested = False  # a plain flag: set by the handler, read by every trial's thread

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        """The handler in place while the run lasts, the previous one back after it. Signals reach
        only the main thread, so elsewhere (a caller's thread) nothing is installed; nor where the
        signal is ignored, as Python leaves SIGINT ignored when it starts with it ignored.
        """
        if (
            threading.current_thread() is not threading.main_thread()
            or signal.getsignal(self.signum) is signal.SIG_IGN  # the caller wants the signal ignored
        ):
            yield
            return
        verbosity = optuna.logging.get_verbosity()
        previous = signal.signal(self.signum, self._handle)
        try:
            yield
        finally:
            signal.signal(self.signum, signal.SIG_DFL if previous is None else previous)
            optuna.logging.set_verbosity(verbosity)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True

    def _stop(self) -> Stopped:
        # Optuna would log a warning and a traceback for every trial stopped; the command says it once.
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        return Stopped(self.signum)

    def objective(self, objective: Callable[[optuna.Trial], Any]) -> Callable[[optuna.Trial], Any]:
        """``objective``, stopped when asked, recording the reason in a stopped trial's ``fail_reason``."""

        def stoppable(trial: optuna.Trial) -> Any:
            try:
                if self.requested:
                    raise self._stop()
                return objective(trial)
            except Stopped as stopped:
                trial.set_user_attr(FAIL_REASON_ATTR, str(stopped))
                raise

        return stoppable

    def during_training(self, trial: optuna.Trial, progress: Any) -> None:
        """The objective's progress callback: a trial in training stops here (the objective goes on
        after a callback's ``Exception``, but :class:`Stopped` is a ``KeyboardInterrupt``).
        """
        if self.requested:
            raise self._stop()

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """The study callback: no further trial starts."""
        if self.requested:
            study.stop()

    def raise_if_requested(self) -> None:
        """Raise :class:`Stopped` if the signal came, after the run ended without a trial raising it."""
        if self.requested:
            raise self._stop()


class _SilentTrials:
    """Fails, with the reason, the trials whose heartbeat stopped (their worker was killed).

    Optuna fails them too, whenever a worker begins a trial, but without saying why (and, with the
    grace period :func:`~optuna_nas.cli._common.open_storage` gives it, a second later). This runs
    as the worker starts, as its trials begin and after each trial (a study callback), so just
    before every check of Optuna's, in one query of the running trials with a heartbeat; it does
    nothing on a storage without heartbeat.
    """

    def __init__(self, storage: optuna.storages.BaseStorage, study: optuna.Study) -> None:
        self._storage = storage if isinstance(storage, optuna.storages.RDBStorage) else None
        self._interval = None if self._storage is None else self._storage.heartbeat_interval
        self._study_id = storage.get_study_id_from_name(study.study_name)
        self._lock = threading.Lock()
        self.fail_now()

    def fail_now(self) -> None:
        if self._storage is None or self._interval is None:
            return
        with self._lock:
            failed, _ = fail_gone_trials(
                self._storage, self._study_id, grace=None, heartbeat_interval=self._interval, heartbeat_only=True
            )
        for trial, reason in failed:
            print(f"optuna-nas: trial {trial.number} failed, {reason.removeprefix('recovered: ')}", file=sys.stderr)

    def after_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.fail_now()


def _run(study: optuna.Study, objective: Any, args: argparse.Namespace, silent: _SilentTrials) -> int:
    stop = _StopOnSignal(signal.SIGTERM)
    with shared_weights_of(study, objective), stop.installed():
        return _run_until_stopped(study, objective, args, silent, stop)


def shared_weights_message(error: Exception) -> str:
    """A :class:`~optuna_nas.objectives.SharedWeights` error as one line of the command's words."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return message.replace("make this objective with take_over=True", "pass --take-over")


@contextlib.contextmanager
def shared_weights_of(study: optuna.Study, objective: Any) -> Iterator[None]:
    """For ENAS's objective, the study claimed (its saved weights loaded) before the run, and
    released (the weights saved) after it, also when it is interrupted; nothing for other objectives.

    Raises:
        CommandError: Another process owns the study's shared weights (without ``--take-over``),
            or its saved weights do not fit the settings.
    """
    from optuna_nas.objectives import SharedWeights

    if not isinstance(objective, SharedWeights):
        yield
        return
    try:
        objective.attach(study)  # here, not in the first trial, which would fail each trial alike
    except (ValueError, OSError) as error:
        raise CommandError(shared_weights_message(error)) from None
    try:
        yield
    finally:
        try:
            objective.release()
        except (ValueError, OSError) as error:
            print(f"optuna-nas: warning: {shared_weights_message(error)}", file=sys.stderr)


def _run_until_stopped(
    study: optuna.Study, objective: Any, args: argparse.Namespace, silent: _SilentTrials, stop: _StopOnSignal
) -> int:
    from optuna_nas.analysis import pareto_front
    from optuna_nas.tracking import MLflowTracker

    silent.fail_now()  # again: making the objective may have taken a while
    callbacks: list[Any] = []
    # A training objective tells how each trial's training goes; the tabular benchmark has no such list.
    training_callbacks = getattr(objective, "progress_callbacks", [])
    training_callbacks.append(stop.during_training)
    tracker = None
    if not getattr(args, "no_mlflow", False):
        tracker = MLflowTracker(tracking_uri=args.mlflow_uri)
        tracker.parent_run_id(study)
        callbacks.append(tracker)
        training_callbacks.append(tracker.log_progress)
    progress = None
    if not args.no_progress:
        from optuna_nas.cli._progress import SearchProgress

        progress = SearchProgress(study, args.n_trials)
        callbacks.append(progress.trial_finished)
        training_callbacks.append(progress.training)
    callbacks += [silent.after_trial, stop.after_trial]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        # A trial that raises ends only itself: Optuna records it as failed, with the error.
        study.optimize(
            stop.objective(objective),
            n_trials=args.n_trials,
            n_jobs=args.n_jobs,
            callbacks=callbacks,
            catch=(Exception,),
        )
    finally:
        if progress is not None:
            progress.close()
        if tracker is not None:
            tracker.end_study(study)
    stop.raise_if_requested()
    front = pareto_front(study)
    names = study.metric_names or ["value"]
    print(f"study {study.study_name!r}: {len(study.trials)} trials, Pareto front of {len(front)}")
    for trial in front:
        values = ", ".join(f"{n}={v:.6g}" for n, v in zip(names, trial.values, strict=False))
        print(f"  trial {trial.number}: {values}  spec {trial.user_attrs.get('spec_hash', '')}")
    return 0
