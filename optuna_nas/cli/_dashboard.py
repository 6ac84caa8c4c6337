"""``optuna-nas dashboard``: optuna-dashboard on a storage."""

from __future__ import annotations

import argparse
import os
import sys

import optuna

from optuna_nas.cli._common import DEFAULT_ARTIFACT_DIR
from optuna_nas.cli._common import given_locations
from optuna_nas.cli._common import open_storage
from optuna_nas.cli._common import saved_locations


def dashboard(args: argparse.Namespace) -> int:
    """Serve the storage's studies, and the artifacts their searches kept (see ``--artifact-dir``)."""
    from optuna_dashboard import run_server

    given = given_locations(args, create_artifact_dir=True)
    storage = open_storage(args.storage, must_exist=True)
    artifact_dir = given["artifact_dir"] if "artifact_dir" in given else _studies_artifact_dir(storage)
    store = None
    if artifact_dir is not None:
        store = optuna.artifacts.FileSystemArtifactStore(artifact_dir)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/dashboard (Ctrl-C to stop)", flush=True)
    run_server(storage, host=args.host, port=args.port, artifact_store=store)
    return 0


def _studies_artifact_dir(storage: optuna.storages.BaseStorage) -> str | None:
    """The artifact folder the studies' saved settings agree on; otherwise says on one line why
    no artifacts are served, and returns ``None``.
    """
    studies: dict[str, list[str]] = {}
    for summary in optuna.get_all_study_summaries(storage, include_best_trial=False):
        folder = saved_locations(summary, read=("artifact_dir",)).artifact_dir
        if folder is not None:
            studies.setdefault(folder, []).append(summary.study_name)
    if len(studies) == 1:
        (folder,) = studies
        if os.path.isdir(folder):
            return folder
        _note(f"the studies' artifact folder {folder!r} is missing here; pass --artifact-dir to serve artifacts.")
        return None
    if len(studies) > 1:
        where = "; ".join(f"{folder} ({', '.join(names)})" for folder, names in sorted(studies.items()))
        _note(f"the studies keep artifacts in different folders: {where}; pass --artifact-dir to serve one of them.")
        return None
    if os.path.isdir(DEFAULT_ARTIFACT_DIR):  # studies saved before their artifact folder was recorded
        _note(f"no study records its artifact folder; serving ./{DEFAULT_ARTIFACT_DIR}.")
        return os.path.abspath(DEFAULT_ARTIFACT_DIR)
    _note("no study records an artifact folder; pass --artifact-dir to serve trained weights and network pictures.")
    return None


def _note(message: str) -> None:
    print(f"optuna-nas: {message}", file=sys.stderr, flush=True)
