"""The ``optuna-nas`` command: search, worker, pareto, export, qtable, dashboard."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from optuna_nas.cli._common import CommandError


def build_parser() -> argparse.ArgumentParser:
    from optuna_nas import __version__
    from optuna_nas.cli._dashboard import dashboard
    from optuna_nas.cli._report import export
    from optuna_nas.cli._report import pareto
    from optuna_nas.cli._report import qtable
    from optuna_nas.cli._search import add_search_arguments
    from optuna_nas.cli._search import search
    from optuna_nas.cli._search import worker

    parser = argparse.ArgumentParser(prog="optuna-nas", description="Neural architecture search on Optuna.")
    parser.add_argument("--version", action="version", version=f"optuna-nas {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("search", help="run or resume a study")
    add_search_arguments(p)
    p.set_defaults(run=search)

    p = commands.add_parser("worker", help="join an existing study with one more process")
    p.add_argument("--storage", required=True)
    p.add_argument("--study-name", required=True)
    p.add_argument("--n-trials", type=int, default=20)
    p.add_argument("--n-jobs", type=int, default=1)
    p.add_argument("--seed", type=int, default=None, help="default: the study's")
    p.add_argument("--mlflow-uri", default="sqlite:///mlflow.db")
    p.add_argument("--no-mlflow", action="store_true")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(run=worker)

    def add_study(p: argparse.ArgumentParser) -> None:
        p.add_argument("--storage", required=True)
        p.add_argument("--study-name", required=True)

    p = commands.add_parser("pareto", help="the Pareto front, its hypervolume and plots")
    add_study(p)
    p.add_argument("--reference", default=None, help="reference point, one value per objective")
    p.add_argument("--out-dir", default=None, help="where the plots go (default: pareto-<study>)")
    p.set_defaults(run=pareto)

    p = commands.add_parser("export", help="a trial's spec and network (TorchScript, ONNX)")
    add_study(p)
    p.add_argument("--trial", type=int, required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--retrain-epochs", type=int, default=0)
    p.add_argument("--artifact-dir", default=None, help="default: the study's")
    p.set_defaults(run=export)

    p = commands.add_parser("qtable", help="a MetaQNN study's Q-table, rebuilt from storage")
    add_study(p)
    p.add_argument("--out", default=None)
    p.set_defaults(run=qtable)

    p = commands.add_parser("dashboard", help="optuna-dashboard on a storage")
    p.add_argument("--storage", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--artifact-dir", default="optuna_nas_artifacts")
    p.set_defaults(run=dashboard)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one line and return 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except CommandError as error:
        print(f"optuna-nas: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a command that stopped reading
        sys.stderr.close()
        return 0
    except KeyboardInterrupt:
        print("optuna-nas: interrupted; finished trials are in the storage", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
