"""``optuna-nas dashboard``: optuna-dashboard on a storage."""

from __future__ import annotations

import argparse
import os

import optuna

from optuna_nas.cli._common import open_storage


def dashboard(args: argparse.Namespace) -> int:
    from optuna_dashboard import run_server

    storage = open_storage(args.storage, must_exist=True)
    store = None
    if args.artifact_dir and os.path.isdir(args.artifact_dir):
        store = optuna.artifacts.FileSystemArtifactStore(args.artifact_dir)
    print(f"optuna-dashboard on http://{args.host}:{args.port}/dashboard (Ctrl-C to stop)", flush=True)
    run_server(storage, host=args.host, port=args.port, artifact_store=store)
    return 0
