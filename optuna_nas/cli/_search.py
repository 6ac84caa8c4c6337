"""``optuna-nas search`` and ``optuna-nas worker``: run or join a study."""

from __future__ import annotations

import argparse
import contextlib
import json
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
        "starts or begins a trial; 0: no heartbeat. A journal storage has no heartbeat: there, optuna-nas "
        "recover fails a killed worker's trials",
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
        help="the controller: random, tpe, nsga2, metaqnn, evolution, reinforce, enas (ENAS: the children share "
        "one supernet's weights, trained in this process, with --space cell or chain - a chain with skip "
        "connections; its controller may sample a child again, as ENAS's, and each visit trains the weights "
        "further; then optuna-nas derive)",
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
        help="where the study is kept: a URL (sqlite:///nas.db, postgresql://...) or a journal file (.log, .journal)",
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


def _config(args: argparse.Namespace) -> dict[str, Any]:
    try:
        filters = [int(f) for f in args.filters.split(",") if f]
    except ValueError:
        raise CommandError(f"--filters must be comma-separated integers, got {args.filters!r}") from None
    if args.n_trials < 1:
        raise CommandError(f"--n-trials must be >= 1, got {args.n_trials}")
    if args.n_jobs < 1:
        raise CommandError(f"--n-jobs must be >= 1, got {args.n_jobs}")
    _heartbeat_interval(args)
    space = "nb201" if args.benchmark else args.space
    sampler_options(args.sampler, reward=args.reward, selection=args.selection)  # checked before any work
    if args.sampler == ENAS:
        _check_enas(args, space)
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
    """Run or resume a study."""
    config = _config(args)
    args.mlflow_uri, args.no_mlflow = config["mlflow_uri"], config["mlflow_uri"] is None
    objective, space = _make_objective(config, take_over=args.take_over)
    sampler = make_sampler(
        config["sampler"],
        config["seed"],
        space,
        reward=config["reward"],
        selection=config["selection"],
        directions=list(objective.directions),
    )
    storage = open_storage(args.storage, heartbeat_interval=_heartbeat_interval(args))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage,
        study_name=args.study_name,
        sampler=sampler,
        directions=objective.directions,
        load_if_exists=True,
    )
    silent = _SilentTrials(storage, study)
    saved_text = study.user_attrs.get(CONFIG_ATTR)
    if saved_text is None:
        study.set_user_attr(CONFIG_ATTR, json.dumps(config))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(objective.metric_names)
        return _run(study, objective, args, silent)
    saved = json.loads(saved_text)
    if saved["space"] != config["space"]:
        raise CommandError(f"--study-name {args.study_name!r} already searches the {saved['space']!r} space")
    if (saved.get("sampler") == ENAS) != (config["sampler"] == ENAS):
        raise CommandError(
            f"--sampler {config['sampler']}: study {args.study_name!r} was searched with --sampler "
            f"{saved.get('sampler')}, and ENAS's shared weights go with --sampler enas only"
        )
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
    return _run(study, objective, args, silent)


def worker(args: argparse.Namespace) -> int:
    """Join an existing study with the settings it was made with.

    The MLflow tracking URI, data root and artifact folder are the study's, as its search saved
    them, unless given; what is given is checked before the study is opened.
    """
    heartbeat_interval = _heartbeat_interval(args)
    given = given_locations(args, create_artifact_dir=True)
    storage = open_storage(args.storage, must_exist=True, heartbeat_interval=heartbeat_interval)
    study = load_study(args.storage, args.study_name, storage=storage)
    silent = _SilentTrials(storage, study)
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
    objective, space = _make_objective(config, take_over=args.take_over)
    reward, selection = saved_sampler_options(config)
    study.sampler = make_sampler(
        config["sampler"],
        config["seed"],
        space,
        reward=reward,
        selection=selection,
        directions=[d.name.lower() for d in study.directions],
    )
    return _run(study, objective, args, silent)


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
