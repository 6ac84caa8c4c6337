"""What the commands share: opening storages and studies with clear errors, the saved config."""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import os
import random
import re
import sys
import time
import urllib.parse
import warnings
from collections.abc import Callable
from typing import Any
from typing import TypeVar

import optuna

from optuna_nas._secrets import mask_secrets
from optuna_nas._secrets import mask_url
from optuna_nas.storages import OrderedGrpcStorageProxy

CONFIG_ATTR = "optuna_nas.config"

#: The study's record of settings changed with ``--force-settings``: a list of
#: ``{"at": ISO time, "command": ..., "changes": {setting: {"saved": old, "given": new}}}``.
SETTINGS_CHANGES_ATTR = "optuna_nas.settings_changes"

#: Tries of a step that processes starting together may race on (see :func:`retry_first_use`),
#: and the wait before the second, doubled before each next one (4 s in all at most).
FIRST_USE_ATTEMPTS = 7
FIRST_USE_WAIT = 0.05

# What the drivers say when another process created the same table, row or study first.
_FIRST_USE_RACES = (
    "database is locked",
    "already exists",
    "unique constraint",
    "duplicate key",
    "uniqueviolation",
    "deadlock detected",
    "could not serialize access",
)

_T = TypeVar("_T")

#: The scheme of Optuna's gRPC storage proxy in ``--storage`` (``grpc://HOST:PORT``).
GRPC_SCHEME = "grpc://"
#: Seconds a command waits for the gRPC storage proxy to answer (workers may start before it).
GRPC_WAIT = 10.0

#: Where ``search`` logs to MLflow unless told otherwise, and where a study saved without its
#: tracking URI is taken to have logged (relative to the current folder).
DEFAULT_MLFLOW_URI = "sqlite:///mlflow.db"

#: Where ``search`` keeps artifacts unless told otherwise; ``dashboard`` serves it when no study
#: records its artifact folder (studies saved before the folder was recorded).
DEFAULT_ARTIFACT_DIR = "optuna_nas_artifacts"

# MLflow tracking URIs without "://" that are not local paths.
_NAMED_MLFLOW_STORES = ("databricks", "databricks-uc", "uc")


class CommandError(Exception):
    """A user error: printed as one line, exit code 2, no traceback."""


class NotReady(CommandError):
    """A study another process is still creating: retried by :func:`retry_first_use`, then reported."""


def is_first_use_race(error: BaseException) -> bool:
    """Whether ``error`` (or an error it was raised from) is one that processes creating or opening
    the same storage or study at once run into: a table, version row or study another one created
    first, or a SQLite database another one holds locked.
    """
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, (NotReady, optuna.exceptions.DuplicatedStudyError)):
            return True
        if isinstance(seen, CommandError):  # a refusal, whatever led to it
            return False
        text = f"{type(seen).__name__} {seen}".lower()
        if any(words in text for words in _FIRST_USE_RACES):
            return True
        seen = seen.__cause__ or (None if seen.__suppress_context__ else seen.__context__)
    return False


def retry_first_use(action: Callable[[], _T]) -> _T:
    """``action()``, tried again after a first-use race (:func:`is_first_use_race`), with a growing,
    jittered wait, :data:`FIRST_USE_ATTEMPTS` times in all; other errors, and the race's after the
    last try, are raised as they are.
    """
    for attempt in range(FIRST_USE_ATTEMPTS):
        try:
            return action()
        except Exception as error:
            if attempt == FIRST_USE_ATTEMPTS - 1 or not is_first_use_race(error):
                raise
        time.sleep(FIRST_USE_WAIT * 2**attempt * random.uniform(0.75, 1.25))
    raise AssertionError("unreachable")  # pragma: no cover


def open_storage(
    url: str, *, must_exist: bool = False, heartbeat_interval: int | None = None
) -> optuna.storages.BaseStorage:
    """An RDB storage for a URL (``sqlite:///...``, ``postgresql://...``), a journal storage for a
    file path ending in ``.log`` or ``.journal``, and Optuna's gRPC storage proxy for
    ``grpc://HOST:PORT`` (a server started with :func:`optuna.storages.run_grpc_proxy_server` in
    front of the database, for many workers; waited for :data:`GRPC_WAIT` seconds).

    Args:
        url: The storage URL or journal file.
        must_exist: Refuse a SQLite database or journal file that does not exist yet.
        heartbeat_interval: Seconds between the heartbeats of each running trial, on an RDB
            storage (Optuna's heartbeat). ``None``: no heartbeat. A journal storage and the gRPC
            proxy have no heartbeat and ignore it. The commands fail a trial silent for twice the interval, with
            the reason, just before Optuna's own check, which every worker runs as it begins a
            trial; that one waits a second longer (the database's clock may have 1 s steps), so it
            is only a backstop, which records no reason but still says which trial it failed.

    Raises:
        CommandError: The storage cannot be opened, or (``must_exist``) a file it names is missing.
    """
    if not url:
        raise CommandError("--storage must be a storage URL such as sqlite:///nas.db, got ''.")
    try:
        if url.startswith(GRPC_SCHEME):
            return _grpc_proxy(url)
        if "://" not in url:
            if not url.endswith((".log", ".journal")):
                raise CommandError(
                    f"--storage {mask_url(url)!r} is neither a URL (sqlite:///nas.db, postgresql://...) nor a journal "
                    "file ending in .log or .journal."
                )
            if must_exist and not os.path.exists(url):
                raise CommandError(f"--storage {mask_url(url)!r}: no such journal file.")
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(url))
        if must_exist and url.startswith("sqlite:///"):
            path = url[len("sqlite:///") :]
            if not os.path.exists(path):
                raise CommandError(f"--storage {mask_url(url)!r}: no database at {path!r}.")
        return retry_first_use(lambda: _rdb_storage(url, heartbeat_interval))
    except CommandError:
        raise
    except Exception as error:  # noqa: BLE001 - any driver error means the same to the user
        raise CommandError(f"--storage {mask_url(url)!r} cannot be opened: {_first_line(error, url)}") from None


def _grpc_proxy(url: str) -> optuna.storages.BaseStorage:
    """Optuna's gRPC storage proxy client for ``grpc://HOST:PORT``, once its server answers.

    Raises:
        CommandError: The URL is not ``grpc://HOST:PORT``, grpcio is not installed, or no server
            answers within :data:`GRPC_WAIT` seconds.
    """
    address = urllib.parse.urlsplit(url)
    try:
        port = address.port
    except ValueError:
        port = None
    if not address.hostname or port is None or address.path not in ("", "/") or address.query:
        raise CommandError(f"--storage {mask_url(url)!r}: a gRPC storage proxy is given as grpc://HOST:PORT.")
    if importlib.util.find_spec("grpc") is None:  # Optuna's proxy client needs it
        raise CommandError(
            f"--storage {mask_url(url)!r}: the gRPC storage proxy needs grpcio: pip install 'optuna-nas[grpc]'"
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        proxy = OrderedGrpcStorageProxy(host=address.hostname, port=port)
    try:
        proxy.wait_server_ready(timeout=GRPC_WAIT)
    except ConnectionError:
        proxy.close()
        raise CommandError(
            f"--storage {mask_url(url)!r}: no gRPC storage proxy answered within {GRPC_WAIT:g} s (start one with "
            "optuna.storages.run_grpc_proxy_server in front of the database)."
        ) from None
    return proxy


def _rdb_storage(url: str, heartbeat_interval: int | None) -> optuna.storages.RDBStorage:
    """An RDB storage, its tables created if they are not there yet (on first use)."""
    if heartbeat_interval is None:
        return optuna.storages.RDBStorage(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=2 * heartbeat_interval + 1,
            heartbeat_stale_trial_callback=_say_failed_without_heartbeat,
        )


def _first_line(error: BaseException, url: str) -> str:
    """The first line of ``error``'s message (its type when it has none), ``url``'s secrets masked."""
    message = str(error).splitlines()[0] if str(error) else type(error).__name__
    return mask_secrets(message, url)


def _say_failed_without_heartbeat(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """What a worker prints when Optuna's own heartbeat check failed a trial (no reason recorded)."""
    message = f"optuna-nas: trial {trial.number} failed, no heartbeat (Optuna's check), its worker is gone"
    print(message, file=sys.stderr)


def load_study(
    url: str,
    study_name: str,
    sampler: optuna.samplers.BaseSampler | None = None,
    *,
    storage: optuna.storages.BaseStorage | None = None,
) -> optuna.Study:
    """Load an existing study.

    Args:
        url: The storage URL or journal file, as given.
        study_name: The study's name.
        sampler: The study's sampler (``None``: Optuna's default).
        storage: The storage of ``url`` already opened (:func:`open_storage`), else it is opened here.

    Raises:
        CommandError: The storage cannot be opened or holds no study of that name.
    """
    if storage is None:
        storage = open_storage(url, must_exist=True)
    try:
        return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise CommandError(f"--study-name {study_name!r} is not in {mask_url(url)}; its studies: {names}") from None


def create_or_load_study(
    url: str,
    storage: optuna.storages.BaseStorage,
    study_name: str,
    *,
    directions: list[str],
    sampler: optuna.samplers.BaseSampler,
    prepare: Callable[[optuna.Study], _T],
) -> tuple[optuna.Study, _T]:
    """The study ``study_name``, created with ``directions`` if it is not there yet, and what
    ``prepare`` (checking its settings, saving them in a new study) returns for it.

    Any number of processes may call this for the same study at once: the step is tried again
    after a first-use race (:func:`retry_first_use`), such as another process having created the
    study first, which is then loaded and prepared as an existing one.

    Args:
        url: The storage URL or journal file, as given (for messages).
        storage: The storage of ``url``, opened (:func:`open_storage`).
        study_name: The study's name.
        directions: The directions of a new study.
        sampler: The study's sampler.
        prepare: Called with the study; raises :class:`CommandError` to refuse it.

    Raises:
        CommandError: ``prepare`` refuses the study, or the storage fails, also after the last try.
    """

    def attempt() -> tuple[optuna.Study, _T]:
        study = optuna.create_study(
            storage=storage,
            study_name=study_name,
            sampler=sampler,
            directions=[optuna.study.StudyDirection[d.upper()] for d in directions],
            load_if_exists=True,
        )
        return study, prepare(study)

    try:
        return retry_first_use(attempt)
    except CommandError:
        raise
    except Exception as error:  # noqa: BLE001 - any driver error means the same to the user
        raise CommandError(
            f"--storage {mask_url(url)!r}: study {study_name!r} cannot be created or opened: {_first_line(error, url)}"
        ) from None


def read_config(study: optuna.Study) -> dict[str, Any]:
    """The search settings the ``search`` command saved with the study."""
    text = study.user_attrs.get(CONFIG_ATTR)
    if text is None:
        raise CommandError(f"study {study.study_name!r} was not made by 'optuna-nas search': it has no saved settings.")
    config: dict[str, Any] = json.loads(text)
    return config


def absolute_folder(path: str, option: str, *, create: bool = False) -> str:
    """``path`` made absolute (``~`` expanded), checked to be a folder or not to exist yet.

    Args:
        path: A folder given on the command line.
        option: The option it came from, for the error message.
        create: Create the folder when it is missing.

    Raises:
        CommandError: ``path`` is a file, or (``create``) the folder cannot be created.
    """
    folder = os.path.abspath(os.path.expanduser(path))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise CommandError(f"{option} {path!r} is a file, not a folder.")
    if create:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as error:
            raise CommandError(f"{option} {path!r} cannot be created: {error.strerror or error}.") from None
    return folder


def absolute_mlflow_uri(uri: str, option: str = "--mlflow-uri") -> str:
    """``uri`` with a relative SQLite file or local folder made absolute.

    So a process started in another folder logs to the same store. Other URIs (``http://...``,
    ``postgresql://...``, ``databricks``) are returned as given.

    Raises:
        CommandError: ``uri`` is empty, or the folder of its SQLite file does not exist.
    """
    if not uri:
        raise CommandError(f"{option} must be an MLflow tracking URI such as {DEFAULT_MLFLOW_URI}, got ''.")
    if uri.startswith("sqlite:///"):
        path, query = uri[len("sqlite:///") :], ""
        if "?" in path:
            path, query = path.split("?", 1)
            query = "?" + query
        if not path or path == ":memory:":
            return uri
        path = os.path.abspath(os.path.expanduser(path))
        if not os.path.isdir(os.path.dirname(path)):
            raise CommandError(f"{option} {uri!r}: the folder {os.path.dirname(path)!r} does not exist.")
        return f"sqlite:///{path}{query}"
    if ":" not in uri and uri not in _NAMED_MLFLOW_STORES:  # a local folder: MLflow's file store
        return absolute_folder(uri, option)
    return uri


@dataclasses.dataclass(frozen=True)
class Locations:
    """Where a study's search logged to MLflow, read its data and kept its artifacts.

    Attributes:
        mlflow_uri: The MLflow tracking URI, or ``None`` when tracking was off.
        data_root: The folder of the torchvision datasets, or ``None`` for the data package's default.
        artifact_dir: The folder of the trials' artifacts, or ``None`` when none were kept.
        recorded: Whether the study's settings record these places. When not (a study saved
            before they were recorded), ``mlflow_uri`` is :data:`DEFAULT_MLFLOW_URI` and relative
            folders are taken from the current folder, as before.
    """

    mlflow_uri: str | None
    data_root: str | None
    artifact_dir: str | None
    recorded: bool


# Why a relative saved place is refused rather than taken from the current folder.
_RELATIVE = "is a relative path (its search saves absolute ones: were the settings edited?)"

#: The places a study's settings keep, with the flags that give them on the command line instead.
PLACE_FLAGS = {
    "mlflow_uri": "--mlflow-uri or --no-mlflow",
    "data_root": "--data-root",
    "artifact_dir": "--artifact-dir",
}


def saved_locations(
    study: optuna.Study | optuna.study.StudySummary,
    *,
    read: tuple[str, ...] = tuple(PLACE_FLAGS),
    overridable: bool = True,
) -> Locations:
    """The places the ``search`` command saved with ``study`` (see :class:`Locations`).

    This is the one function that reads paths from a study's settings, which anyone who can write
    the storage can edit, so each place is checked as it is read: ``search`` saves them absolute,
    so a relative one (in settings that record their places) or a file where a folder belongs
    means the settings were changed since; it is refused, named by its setting, and never opened.
    A study without saved settings (not made by ``search``) has no MLflow runs or artifacts to find.

    Args:
        study: The study or its summary.
        read: The places to read and check (fields of :class:`Locations`); the others are ``None``,
            such as those the command line gives instead.
        overridable: Whether the command takes flags for the places (:data:`PLACE_FLAGS`), to name
            them in the error.

    Raises:
        CommandError: A place read is relative, or names a file where a folder belongs.
    """
    text = study.user_attrs.get(CONFIG_ATTR)
    try:
        config = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        config = None
    if not isinstance(config, dict):
        return Locations(mlflow_uri=None, data_root=None, artifact_dir=None, recorded=False)
    recorded = "mlflow_uri" in config

    def refuse(key: str, value: str, problem: str) -> CommandError:
        hint = f"; pass {PLACE_FLAGS[key]} to use another place" if overridable else ""
        return CommandError(f"study {study.study_name!r}: its saved setting {key} {value!r} {problem}{hint}.")

    def folder(key: str) -> str | None:
        value = config.get(key) if key in read else None
        if not isinstance(value, str) or not value:
            return None
        if recorded and not os.path.isabs(value):
            raise refuse(key, value, _RELATIVE)
        path = os.path.abspath(os.path.expanduser(value))  # relative: saved by an older version
        if os.path.exists(path) and not os.path.isdir(path):
            raise refuse(key, value, "is not a folder")
        return path

    def mlflow_uri() -> str | None:
        if not recorded:
            return DEFAULT_MLFLOW_URI if "mlflow_uri" in read else None
        value = config.get("mlflow_uri") if "mlflow_uri" in read else None
        if not isinstance(value, str) or not value:
            return None
        path = value[len("sqlite:///") :].split("?", 1)[0] if value.startswith("sqlite:///") else None
        if path is not None and path not in ("", ":memory:") and not os.path.isabs(path):
            raise refuse("mlflow_uri", value, f"names a SQLite file by {_RELATIVE[3:]}")
        if path is None and ":" not in value and value not in _NAMED_MLFLOW_STORES:  # MLflow's file store
            if not os.path.isabs(value):
                raise refuse("mlflow_uri", value, _RELATIVE)
            if os.path.exists(value) and not os.path.isdir(value):
                raise refuse("mlflow_uri", value, "is not a folder")
        return value

    return Locations(
        mlflow_uri=mlflow_uri(),
        data_root=folder("data_root"),
        artifact_dir=folder("artifact_dir"),
        recorded=recorded,
    )


def study_locations(
    study: optuna.Study, given: dict[str, str | None], *, read: tuple[str, ...] = tuple(PLACE_FLAGS)
) -> Locations:
    """The study's saved places (:func:`saved_locations`), with those ``given`` in their stead: a
    place given is not read from the settings, so a flag overrides a saved place that is refused.
    """
    saved = saved_locations(study, read=tuple(key for key in read if key not in given))
    return Locations(
        mlflow_uri=given.get("mlflow_uri", saved.mlflow_uri),
        data_root=given.get("data_root", saved.data_root),
        artifact_dir=given.get("artifact_dir", saved.artifact_dir),
        recorded=saved.recorded,
    )


def given_locations(args: argparse.Namespace, *, create_artifact_dir: bool) -> dict[str, str | None]:
    """The places given on the command line (``--mlflow-uri``, ``--no-mlflow``, ``--data-root``,
    ``--artifact-dir``), checked and made absolute, as :class:`Locations` fields; they win over
    the study's. ``--artifact-dir ''`` keeps no artifacts.

    Raises:
        CommandError: A place given is not usable (see :func:`absolute_folder`,
            :func:`absolute_mlflow_uri`).
    """
    given: dict[str, str | None] = {}
    if getattr(args, "no_mlflow", False):
        given["mlflow_uri"] = None
    elif getattr(args, "mlflow_uri", None) is not None:
        given["mlflow_uri"] = absolute_mlflow_uri(args.mlflow_uri)
    if getattr(args, "data_root", None) is not None:
        given["data_root"] = absolute_folder(args.data_root, "--data-root")
    artifact_dir = getattr(args, "artifact_dir", None)
    if artifact_dir is not None:
        given["artifact_dir"] = (
            absolute_folder(artifact_dir, "--artifact-dir", create=create_artifact_dir) if artifact_dir else None
        )
    return given


def safe_file_name(name: str) -> str:
    """``name`` (a study's, which anyone who can write the storage chooses) as one harmless path
    component: characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``, and it
    never starts with a dot, so ``x/../../escaped`` stays inside the current folder.

    Example:
        >>> safe_file_name("x/../../escaped")
        'x_.._.._escaped'
    """
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name)[:200]
    return "_" + cleaned if cleaned.startswith(".") or not cleaned else cleaned
