"""``optuna-nas search`` and ``optuna-nas worker``: run or join a study."""

from __future__ import annotations

import argparse
import json
import warnings
from typing import Any

import optuna

from optuna_nas.cli._build import make_objective
from optuna_nas.cli._build import make_sampler
from optuna_nas.cli._common import CONFIG_ATTR
from optuna_nas.cli._common import CommandError
from optuna_nas.cli._common import load_study
from optuna_nas.cli._common import open_storage
from optuna_nas.cli._common import read_config
from optuna_nas.objectives import DEFAULT_TABLE


def add_search_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", choices=("chain", "cell", "nb201"), default="chain")
    parser.add_argument("--sampler", default="metaqnn", help="random, tpe, nsga2, metaqnn, evolution")
    parser.add_argument(
        "--dataset",
        default="mnist5k",
        help="mnist5k, digits, mnist, fashion_mnist, cifar10; with --benchmark: cifar10, cifar100, imagenet16",
    )
    parser.add_argument(
        "--benchmark",
        choices=("nasbench201",),
        default=None,
        help="score cells from the NAS-Bench-201 table instead of training",
    )
    parser.add_argument("--table", default=DEFAULT_TABLE, help="NAS-Bench-201 table (with --benchmark)")
    parser.add_argument("--data-root", default=None, help="folder of torchvision datasets")
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--n-jobs", type=int, default=1)
    parser.add_argument("--storage", default="sqlite:///optuna_nas.db")
    parser.add_argument("--study-name", default="optuna-nas")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--max-layers", type=int, default=6, help="chain space")
    parser.add_argument("--filters", default="16,32,64", help="chain space, comma-separated")
    parser.add_argument("--max-blocks", type=int, default=3, help="cell space")
    parser.add_argument("--channels", type=int, default=8, help="cell space")
    parser.add_argument("--single-objective", action="store_true", help="accuracy only (pruners work)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--mlflow-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--no-mlflow", action="store_true")
    parser.add_argument(
        "--artifact-dir",
        default="optuna_nas_artifacts",
        help="where trained weights and network pictures are kept ('' to keep none)",
    )
    parser.add_argument("--no-progress", action="store_true")


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
    return {
        "space": space,
        "sampler": args.sampler,
        "dataset": args.dataset,
        "benchmark": args.benchmark,
        "table": args.table,
        "data_root": args.data_root,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "max_layers": args.max_layers,
        "filters": filters,
        "max_blocks": args.max_blocks,
        "channels": args.channels,
        "single_objective": args.single_objective,
        "seed": args.seed,
        "artifact_dir": None if args.benchmark else (args.artifact_dir or None),
    }


def search(args: argparse.Namespace) -> int:
    """Run or resume a study."""
    config = _config(args)
    try:
        objective, space = make_objective(config)
    except ValueError as error:
        raise CommandError(str(error)) from None
    sampler = make_sampler(config["sampler"], config["seed"], space)
    storage = open_storage(args.storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage,
        study_name=args.study_name,
        sampler=sampler,
        directions=objective.directions,
        load_if_exists=True,
    )
    saved = study.user_attrs.get(CONFIG_ATTR)
    if saved is None:
        study.set_user_attr(CONFIG_ATTR, json.dumps(config))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective.metric_names)
    elif json.loads(saved)["space"] != config["space"]:
        raise CommandError(
            f"--study-name {args.study_name!r} already searches the {json.loads(saved)['space']!r} space"
        )
    return _run(study, objective, args)


def worker(args: argparse.Namespace) -> int:
    """Join an existing study with the settings it was made with."""
    study = load_study(args.storage, args.study_name)
    config = read_config(study)
    if args.seed is not None:
        config["seed"] = args.seed
    objective, space = make_objective(config)
    sampler = make_sampler(config["sampler"], config["seed"], space)
    study.sampler = sampler
    return _run(study, objective, args)


def _run(study: optuna.Study, objective: Any, args: argparse.Namespace) -> int:
    from optuna_nas.analysis import pareto_front
    from optuna_nas.tracking import MLflowTracker

    callbacks = []
    tracker = None
    if not getattr(args, "no_mlflow", False):
        tracker = MLflowTracker(tracking_uri=args.mlflow_uri)
        tracker.parent_run_id(study)
        callbacks.append(tracker)
    progress = None
    if not args.no_progress:
        from tqdm import tqdm

        progress = tqdm(total=args.n_trials, desc=study.study_name, unit="trial")

        def show(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
            best = max((t.values[0] for t in complete), default=float("nan"))
            progress.set_postfix(best_accuracy=f"{best:.4f}", pareto=len(pareto_front(study)), refresh=False)
            progress.update(1)

        callbacks.append(show)
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
