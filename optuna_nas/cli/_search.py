"""``optuna-nas search`` and ``optuna-nas worker``: run or join a study."""

from __future__ import annotations

import argparse
import json
import os
import warnings
from typing import Any

import optuna

from optuna_nas.cli._build import make_objective
from optuna_nas.cli._build import make_sampler
from optuna_nas.cli._build import sampler_options
from optuna_nas.cli._build import saved_sampler_options
from optuna_nas.cli._common import CONFIG_ATTR
from optuna_nas.cli._common import DEFAULT_ARTIFACT_DIR
from optuna_nas.cli._common import DEFAULT_MLFLOW_URI
from optuna_nas.cli._common import CommandError
from optuna_nas.cli._common import absolute_folder
from optuna_nas.cli._common import absolute_mlflow_uri
from optuna_nas.cli._common import given_locations
from optuna_nas.cli._common import load_study
from optuna_nas.cli._common import open_storage
from optuna_nas.cli._common import read_config
from optuna_nas.cli._common import study_locations
from optuna_nas.objectives import DEFAULT_TABLE


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--space",
        choices=("chain", "cell", "nb201", "dag"),
        default="chain",
        help="search space: layer-by-layer CNNs (MetaQNN), PNAS cells, the NAS-Bench-201 cell, or NAS-Bench-101 "
        "cells (dag)",
    )
    parser.add_argument("--sampler", default="metaqnn", help="the controller: random, tpe, nsga2, metaqnn, evolution")
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
        help="where the study is kept: a URL (sqlite:///nas.db, postgresql://...) or a journal file (.log, .journal)",
    )
    parser.add_argument("--study-name", default="optuna-nas", help="the study; an existing one is resumed")
    parser.add_argument("--epochs", type=int, default=2, help="training epochs per network")
    parser.add_argument("--batch-size", type=int, default=128, help="images per training step")
    parser.add_argument("--learning-rate", type=float, default=1e-3, help="Adam's learning rate")
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


def _config(args: argparse.Namespace) -> dict[str, Any]:
    try:
        filters = [int(f) for f in args.filters.split(",") if f]
    except ValueError:
        raise CommandError(f"--filters must be comma-separated integers, got {args.filters!r}") from None
    if args.n_trials < 1:
        raise CommandError(f"--n-trials must be >= 1, got {args.n_trials}")
    if args.n_jobs < 1:
        raise CommandError(f"--n-jobs must be >= 1, got {args.n_jobs}")
    space = "nb201" if args.benchmark else args.space
    sampler_options(args.sampler, reward=args.reward, selection=args.selection)  # checked before any work
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
        "seed": args.seed,
        "artifact_dir": None if artifact_dir is None else absolute_folder(artifact_dir, "--artifact-dir", create=True),
        "mlflow_uri": None if args.no_mlflow else absolute_mlflow_uri(args.mlflow_uri),
    }


def search(args: argparse.Namespace) -> int:
    """Run or resume a study."""
    config = _config(args)
    args.mlflow_uri, args.no_mlflow = config["mlflow_uri"], config["mlflow_uri"] is None
    objective, space = _make_objective(config)
    sampler = make_sampler(
        config["sampler"],
        config["seed"],
        space,
        reward=config["reward"],
        selection=config["selection"],
        directions=list(objective.directions),
    )
    storage = open_storage(args.storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage,
        study_name=args.study_name,
        sampler=sampler,
        directions=objective.directions,
        load_if_exists=True,
    )
    saved_text = study.user_attrs.get(CONFIG_ATTR)
    if saved_text is None:
        study.set_user_attr(CONFIG_ATTR, json.dumps(config))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective.metric_names)
        return _run(study, objective, args)
    saved = json.loads(saved_text)
    if saved["space"] != config["space"]:
        raise CommandError(f"--study-name {args.study_name!r} already searches the {saved['space']!r} space")
    # Every worker learns the same only if every one uses the study's reward and selection.
    reward, selection = saved_sampler_options(saved)
    for flag, given, kept in (("--reward", args.reward, reward), ("--selection", args.selection, selection)):
        if given is not None and given != kept:
            shown = "the sampler's default" if kept is None else repr(kept)
            raise CommandError(f"{flag} {given!r}: study {args.study_name!r} was searched with {shown}")
    study.sampler = make_sampler(
        config["sampler"],
        config["seed"],
        space,
        reward=reward,
        selection=selection,
        directions=list(objective.directions),
    )
    return _run(study, objective, args)


def worker(args: argparse.Namespace) -> int:
    """Join an existing study with the settings it was made with.

    The MLflow tracking URI, data root and artifact folder are the study's, as its search saved
    them, unless given; what is given is checked before the study is opened.
    """
    given = given_locations(args, create_artifact_dir=True)
    study = load_study(args.storage, args.study_name)
    config = read_config(study)
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
    args.mlflow_uri, args.no_mlflow = places.mlflow_uri, places.mlflow_uri is None
    objective, space = _make_objective(config)
    reward, selection = saved_sampler_options(config)
    study.sampler = make_sampler(
        config["sampler"],
        config["seed"],
        space,
        reward=reward,
        selection=selection,
        directions=[d.name.lower() for d in study.directions],
    )
    return _run(study, objective, args)


def _make_objective(config: dict[str, Any]) -> tuple[Any, Any]:
    try:
        return make_objective(config)
    except (ValueError, OSError) as error:  # bad settings, missing data or table
        raise CommandError(str(error).splitlines()[0] if str(error) else type(error).__name__) from None


def _run(study: optuna.Study, objective: Any, args: argparse.Namespace) -> int:
    from optuna_nas.analysis import pareto_front
    from optuna_nas.tracking import MLflowTracker

    callbacks: list[Any] = []
    # A training objective tells how each trial's training goes; the tabular benchmark has no such list.
    training_callbacks = getattr(objective, "progress_callbacks", [])
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
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        # A trial that raises ends only itself: Optuna records it as failed, with the error.
        study.optimize(objective, n_trials=args.n_trials, n_jobs=args.n_jobs, callbacks=callbacks, catch=(Exception,))
    finally:
        if progress is not None:
            progress.close()
        if tracker is not None:
            tracker.end_study(study)
    front = pareto_front(study)
    names = study.metric_names or ["value"]
    print(f"study {study.study_name!r}: {len(study.trials)} trials, Pareto front of {len(front)}")
    for trial in front:
        values = ", ".join(f"{n}={v:.6g}" for n, v in zip(names, trial.values, strict=False))
        print(f"  trial {trial.number}: {values}  spec {trial.user_attrs.get('spec_hash', '')}")
    return 0
