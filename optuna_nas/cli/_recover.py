"""``optuna-nas recover``: fail the running trials whose worker is gone.

A worker killed outright (``kill -9``, a lost node, a scheduler's SIGKILL) leaves its trial
RUNNING. On an RDB storage, workers started with a heartbeat fail such a trial themselves, but only
while some worker is left to start a trial; on a journal storage nothing records that a worker
lives. This command fails them on any storage, each with its reason in the trial's ``fail_reason``
user attr.

A running trial's last sign of life is its last heartbeat when its worker recorded heartbeats (RDB
storages, Optuna's ``trial_heartbeats`` table, in the database's clock), else its start
(``datetime_start``): Optuna keeps no time for a trial's later writes (intermediate values, attrs).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import math
from collections.abc import Sequence

import optuna
from optuna.trial import TrialState

from optuna_nas.cli._common import CommandError
from optuna_nas.cli._common import load_study
from optuna_nas.cli._common import open_storage

#: The user attr that says why a trial failed (the objectives use it too).
FAIL_REASON_ATTR = "fail_reason"


@dataclasses.dataclass(frozen=True)
class RunningTrial:
    """A running trial and how long it has been silent.

    Attributes:
        number: The trial's number.
        trial_id: The trial's id in the storage.
        silent_seconds: Seconds since its last heartbeat, or since its start when it has none.
        heartbeat: Whether its worker recorded heartbeats (``silent_seconds`` counts from the last).
    """

    number: int
    trial_id: int
    silent_seconds: float
    heartbeat: bool

    def silence(self) -> str:
        """How long the trial has been silent, in words."""
        if self.heartbeat:
            return f"no heartbeat for {self.silent_seconds:.0f} s"
        return f"started {self.silent_seconds:.0f} s ago, no heartbeat recorded"


def running_trials(
    storage: optuna.storages.BaseStorage, study_id: int, *, heartbeat_only: bool = False
) -> list[RunningTrial]:
    """The study's running trials, in number order, each with how long it has been silent.

    Args:
        storage: The study's storage.
        study_id: The study's id in it.
        heartbeat_only: Only the trials with a heartbeat (read in one query; none on a journal).
    """
    beating = _beating_trials(storage, study_id)
    if heartbeat_only:
        return sorted(beating.values(), key=lambda t: t.number)
    trials = storage.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
    now = datetime.datetime.now()  # Optuna stamps datetime_start with the local clock
    running = []
    for trial in sorted(trials, key=lambda t: t.number):
        if trial.number in beating:
            running.append(beating[trial.number])
            continue
        started = trial.datetime_start
        silent = 0.0 if started is None else max(0.0, (now - started).total_seconds())
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, trial.number)
        running.append(RunningTrial(trial.number, trial_id, silent, heartbeat=False))
    return running


def _beating_trials(storage: optuna.storages.BaseStorage, study_id: int) -> dict[int, RunningTrial]:
    """The study's running trials that have a heartbeat, by number (RDB storages only).

    One query of the tables of Optuna's RDB storage, ``trials`` and ``trial_heartbeats``, whose SQL
    SQLite, PostgreSQL and MySQL all read; both times come from the database's clock, as Optuna's
    own stale-trial check reads them.
    """
    if not isinstance(storage, optuna.storages.RDBStorage):
        return {}
    query = (
        "SELECT trials.trial_id, trials.number, trial_heartbeats.heartbeat, CURRENT_TIMESTAMP FROM trials "
        "JOIN trial_heartbeats ON trial_heartbeats.trial_id = trials.trial_id "
        f"WHERE trials.study_id = {int(study_id)} AND trials.state = 'RUNNING'"
    )
    with storage.engine.connect() as connection:
        rows = connection.exec_driver_sql(query).all()
    beating = {}
    for trial_id, number, beat, now in rows:
        silent = (_naive(now) - _naive(beat)).total_seconds()
        beating[int(number)] = RunningTrial(int(number), int(trial_id), max(0.0, silent), heartbeat=True)
    return beating


def _naive(value: datetime.datetime | str) -> datetime.datetime:
    """A time read from the database: SQLite answers with text; PostgreSQL's clock has a time zone,
    which the heartbeat column has not (Optuna compares them the same way).
    """
    if isinstance(value, str):
        value = datetime.datetime.fromisoformat(value)
    return value.replace(tzinfo=None)


def is_gone(trial: RunningTrial, *, grace: float | None, heartbeat_interval: int) -> bool:
    """Whether ``trial``'s worker is taken to be gone.

    Args:
        trial: A running trial.
        grace: Seconds of silence allowed (since the last heartbeat, or the start for a trial
            without one); ``0`` takes every running trial as gone. ``None``: only a trial whose
            heartbeat stopped for longer than twice ``heartbeat_interval`` (Optuna's grace period).
        heartbeat_interval: The workers' heartbeat interval, in seconds.
    """
    if grace is None:
        return trial.heartbeat and trial.silent_seconds > 2 * heartbeat_interval
    return grace == 0 or trial.silent_seconds > grace


def fail_trial(storage: optuna.storages.BaseStorage, trial: RunningTrial, reason: str) -> bool:
    """Record ``reason`` in the trial's ``fail_reason`` user attr, then fail it.

    Returns:
        ``False`` when the trial finished in the meantime (its worker was alive): it is left as it is.
    """
    try:
        storage.set_trial_user_attr(trial.trial_id, FAIL_REASON_ATTR, reason)
        return storage.set_trial_state_values(trial.trial_id, TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def fail_gone_trials(
    storage: optuna.storages.BaseStorage,
    study_id: int,
    *,
    grace: float | None,
    heartbeat_interval: int,
    heartbeat_only: bool = False,
) -> tuple[list[tuple[RunningTrial, str]], list[RunningTrial]]:
    """Fail the study's running trials whose worker is gone (see :func:`is_gone`).

    Args:
        storage: The study's storage.
        study_id: The study's id in it.
        grace: See :func:`is_gone`.
        heartbeat_interval: See :func:`is_gone`.
        heartbeat_only: Look at the trials with a heartbeat only (one query; without ``grace`` no
            other trial is failed, but the others are then not among those left alone).

    Returns:
        The trials failed, each with the reason recorded, and the running trials left alone.
    """
    failed, left = [], []
    for trial in running_trials(storage, study_id, heartbeat_only=heartbeat_only):
        if not is_gone(trial, grace=grace, heartbeat_interval=heartbeat_interval):
            left.append(trial)
            continue
        allowed = f"grace {_seconds(grace)} s" if grace is not None else f"grace {2 * heartbeat_interval} s"
        reason = f"recovered: {trial.silence()} ({allowed}), its worker is gone"
        if fail_trial(storage, trial, reason):
            failed.append((trial, reason))
    return failed, left


def recover(args: argparse.Namespace) -> int:
    """Fail the running trials of a study whose worker is gone, and say which."""
    grace = check_grace(args.grace)
    if args.heartbeat_interval < 1:
        raise CommandError(
            f"--heartbeat-interval must be a whole number of seconds >= 1, got {args.heartbeat_interval}"
        )
    storage = open_storage(args.storage, must_exist=True)
    study = load_study(args.storage, args.study_name, storage=storage)
    study_id = storage.get_study_id_from_name(study.study_name)
    failed, left = fail_gone_trials(storage, study_id, grace=grace, heartbeat_interval=args.heartbeat_interval)
    for trial, reason in failed:
        print(f"trial {trial.number}: failed, {reason.removeprefix('recovered: ')}")
    print(_summary(study.study_name, failed, left, grace=grace, heartbeat_interval=args.heartbeat_interval))
    return 0


def check_grace(grace: float | None) -> float | None:
    """``--grace`` checked: ``None`` or a finite number of seconds >= 0.

    Raises:
        CommandError: It is negative, infinite or not a number.
    """
    if grace is not None and not (math.isfinite(grace) and grace >= 0):
        raise CommandError(f"--grace must be a number of seconds >= 0 (0: every running trial), got {grace:g}")
    return grace


def _summary(
    name: str,
    failed: Sequence[tuple[RunningTrial, str]],
    left: Sequence[RunningTrial],
    *,
    grace: float | None,
    heartbeat_interval: int,
) -> str:
    running = len(failed) + len(left)
    if running == 0:
        return f"study {name!r}: no running trial"
    text = f"study {name!r}: {len(failed)} of {running} running trials failed"
    if not left:
        return text
    beating = sum(t.heartbeat for t in left)
    parts = []
    if beating:
        limit = _seconds(grace) if grace is not None else 2 * heartbeat_interval
        parts.append(f"{beating} with a heartbeat within {limit} s")
    if len(left) - beating:
        quiet = len(left) - beating
        if grace is None:
            parts.append(f"{quiet} without a heartbeat (pass --grace SECONDS to fail those silent that long)")
        else:
            parts.append(f"{quiet} without a heartbeat, started within {_seconds(grace)} s")
    return f"{text}; left running: " + ", ".join(parts)


def _seconds(value: float) -> str:
    return f"{value:g}"
