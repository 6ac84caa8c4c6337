"""What the commands share: opening storages and studies with clear errors, the saved config."""

from __future__ import annotations

import json
import os
from typing import Any

import optuna

CONFIG_ATTR = "optuna_nas.config"


class CommandError(Exception):
    """A user error: printed as one line, exit code 2, no traceback."""


def open_storage(url: str, *, must_exist: bool = False) -> optuna.storages.BaseStorage:
    """An RDB storage for a URL (``sqlite:///...``, ``postgresql://...``), a journal storage for a
    file path ending in ``.log`` or ``.journal``.

    Raises:
        CommandError: The storage cannot be opened, or (``must_exist``) a file it names is missing.
    """
    if not url:
        raise CommandError("--storage must be a storage URL such as sqlite:///nas.db, got ''.")
    try:
        if "://" not in url:
            if not url.endswith((".log", ".journal")):
                raise CommandError(
                    f"--storage {url!r} is neither a URL (sqlite:///nas.db, postgresql://...) nor a journal "
                    "file ending in .log or .journal."
                )
            if must_exist and not os.path.exists(url):
                raise CommandError(f"--storage {url!r}: no such journal file.")
            from optuna.storages.journal import JournalFileBackend

            return optuna.storages.JournalStorage(JournalFileBackend(url))
        if must_exist and url.startswith("sqlite:///"):
            path = url[len("sqlite:///") :]
            if not os.path.exists(path):
                raise CommandError(f"--storage {url!r}: no database at {path!r}.")
        return optuna.storages.RDBStorage(url)
    except CommandError:
        raise
    except Exception as error:  # noqa: BLE001 - any driver error means the same to the user
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CommandError(f"--storage {url!r} cannot be opened: {message}") from None


def load_study(url: str, study_name: str, sampler: optuna.samplers.BaseSampler | None = None) -> optuna.Study:
    """Load an existing study.

    Raises:
        CommandError: The storage cannot be opened or holds no study of that name.
    """
    storage = open_storage(url, must_exist=True)
    try:
        return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise CommandError(f"--study-name {study_name!r} is not in {url}; its studies: {names}") from None


def read_config(study: optuna.Study) -> dict[str, Any]:
    """The search settings the ``search`` command saved with the study."""
    text = study.user_attrs.get(CONFIG_ATTR)
    if text is None:
        raise CommandError(f"study {study.study_name!r} was not made by 'optuna-nas search': it has no saved settings.")
    return json.loads(text)
