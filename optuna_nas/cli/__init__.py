"""The ``optuna-nas`` command: search, worker, recover, pareto, export, derive, qtable, dashboard."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from optuna_nas.cli._common import DEFAULT_ARTIFACT_DIR
from optuna_nas.cli._common import CommandError


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows each option's default after its help, except switches and defaults the help states in
    words (those whose value is ``None``, such as "default: the study's").
    """

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    """Reports a malformed command line on one line (``optuna-nas search: error: ...``, with a pointer
    to ``--help``) and exits with status 2, rather than printing the whole usage first.
    """

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


_STORAGE_HELP = (
    "the study's storage: a URL (sqlite:///nas.db, postgresql://..., grpc://HOST:PORT for a gRPC storage proxy) "
    "or a journal file (.log, .journal)"
)


def build_parser() -> argparse.ArgumentParser:
    from optuna_nas import __version__
    from optuna_nas.analysis import EXPORT_FORMATS
    from optuna_nas.cli._dashboard import dashboard
    from optuna_nas.cli._derive import add_derive_arguments
    from optuna_nas.cli._derive import derive
    from optuna_nas.cli._recover import recover
    from optuna_nas.cli._report import export
    from optuna_nas.cli._report import pareto
    from optuna_nas.cli._report import qtable
    from optuna_nas.cli._search import DEFAULT_HEARTBEAT_INTERVAL
    from optuna_nas.cli._search import add_heartbeat_argument
    from optuna_nas.cli._search import add_search_arguments
    from optuna_nas.cli._search import add_take_over_argument
    from optuna_nas.cli._search import search
    from optuna_nas.cli._search import worker

    parser = _Parser(
        prog="optuna-nas", description="Neural architecture search on Optuna.", formatter_class=_HelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"optuna-nas {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, summary: str) -> argparse.ArgumentParser:
        return commands.add_parser(
            name, help=summary, description=summary[0].upper() + summary[1:] + ".", formatter_class=_HelpFormatter
        )

    p = command("search", "run or resume a study")
    add_search_arguments(p)
    p.set_defaults(run=search)

    p = command("worker", "join an existing study with one more process")
    p.add_argument("--storage", required=True, help=_STORAGE_HELP)
    p.add_argument("--study-name", required=True, help="the study to join")
    p.add_argument("--n-trials", type=int, default=20, help="trials this process runs")
    p.add_argument("--n-jobs", type=int, default=1, help="trials this process runs at once, in threads")
    p.add_argument("--seed", type=int, default=None, help="the sampler's seed (default: the study's)")
    p.add_argument(
        "--mlflow-uri",
        default=None,
        help="MLflow tracking URI (default: the study's, or no tracking if its search had none; "
        "for a study saved without one, sqlite:///mlflow.db in the current folder)",
    )
    p.add_argument("--no-mlflow", action="store_true", help="log nothing to MLflow")
    p.add_argument("--data-root", default=None, help="folder of the torchvision datasets (default: the study's)")
    p.add_argument(
        "--artifact-dir",
        default=None,
        help="where trained weights and network pictures are kept, '' for nowhere (default: the study's; "
        "a relative one saved by an older version is taken from the current folder)",
    )
    p.add_argument("--no-progress", action="store_true", help="show no progress bar")
    add_heartbeat_argument(p)
    add_take_over_argument(p)
    p.set_defaults(run=worker)

    p = command("recover", "fail the running trials of a study whose worker is gone (killed, lost)")
    p.add_argument("--storage", required=True, help=_STORAGE_HELP)
    p.add_argument("--study-name", required=True, help="the study to recover")
    p.add_argument(
        "--grace",
        type=float,
        default=None,
        help="seconds a running trial may stay silent: it is failed when its last heartbeat (RDB storages with "
        "heartbeats), or else its start, is older; 0 fails every running trial at once, for when no worker is "
        "left (default: only trials whose heartbeat stopped for twice --heartbeat-interval; trials without "
        "heartbeats, as on a journal storage, are left running)",
    )
    p.add_argument(
        "--heartbeat-interval",
        type=int,
        default=DEFAULT_HEARTBEAT_INTERVAL,
        help="the workers' --heartbeat-interval, for the grace period when --grace is not given",
    )
    p.set_defaults(run=recover)

    def add_study(p: argparse.ArgumentParser) -> None:
        p.add_argument("--storage", required=True, help=_STORAGE_HELP)
        p.add_argument("--study-name", required=True, help="the study to read")

    p = command("pareto", "the Pareto front, its hypervolume and plots")
    add_study(p)
    p.add_argument(
        "--reference",
        default=None,
        help="hypervolume reference point, one comma-separated value per objective (default: 0 for "
        "maximised objectives, 1.1 x the largest value seen for minimised ones)",
    )
    p.add_argument("--out-dir", default=None, help="folder for the plots (default: pareto-<study name>)")
    p.set_defaults(run=pareto)

    p = command("export", "a trial's spec and trained network (torch.export, ONNX, TorchScript), checked")
    add_study(p)
    p.add_argument("--trial", type=int, required=True, help="number of the trial to export")
    p.add_argument(
        "--out",
        required=True,
        help="folder for spec.json, the network (model.pt2, model.onnx or model.pt) and export.json",
    )
    p.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="pt2",
        help="pt2: a torch.export program (torch.export.load); onnx: ONNX, needs pip install 'optuna-nas[onnx]'; "
        "torchscript: for runtimes older than torch.export (deprecated by torch)",
    )
    p.add_argument(
        "--retrain-epochs",
        type=int,
        default=0,
        help="train the network from scratch for this many epochs on the training and validation data "
        "instead of loading the trial's trained weights (0: load them)",
    )
    p.add_argument(
        "--artifact-dir",
        default=None,
        help="folder of the trials' trained weights (default: the study's; a relative one saved by an older "
        "version is taken from the current folder)",
    )
    p.add_argument(
        "--data-root",
        default=None,
        help="folder of the torchvision datasets, for --retrain-epochs (default: the study's)",
    )
    p.set_defaults(run=export)

    p = command("derive", "the architecture an ENAS study's controller and shared weights pick, to retrain")
    add_study(p)
    add_derive_arguments(p)
    p.set_defaults(run=derive)

    p = command("qtable", "a MetaQNN study's Q-table, rebuilt from storage")
    add_study(p)
    p.add_argument("--out", default=None, help="JSON file for the Q-table (default: print it)")
    p.set_defaults(run=qtable)

    p = command("dashboard", "optuna-dashboard on a storage, with the trials' artifacts")
    p.add_argument("--storage", required=True, help=_STORAGE_HELP.replace("the study's", "the studies'"))
    p.add_argument("--host", default="127.0.0.1", help="address the server listens on")
    p.add_argument("--port", type=int, default=8080, help="port the server listens on")
    p.add_argument(
        "--artifact-dir",
        default=None,
        help="folder of the artifacts to serve (default: the one the studies' saved settings name, when they "
        f"agree; ./{DEFAULT_ARTIFACT_DIR} when no study names one)",
    )
    p.set_defaults(run=dashboard)
    return parser


def check_shared_arguments(args: argparse.Namespace) -> None:
    """The checks of the options several commands share, the same for each command, before any work.

    Raises:
        CommandError: ``--n-trials`` or ``--n-jobs`` below 1, an empty ``--study-name``, or a
            ``--port`` outside 1-65535.
    """
    for option in ("n_trials", "n_jobs"):
        value = getattr(args, option, None)
        if value is not None and value < 1:
            raise CommandError(f"--{option.replace('_', '-')} must be >= 1, got {value}")
    name = getattr(args, "study_name", None)
    if name is not None and not name.strip():
        raise CommandError(f"--study-name must name a study, got {name!r}")
    port = getattr(args, "port", None)
    if port is not None and not 1 <= port <= 65535:
        raise CommandError(f"--port must be in 1-65535, got {port}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; user errors print one line and return 2."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for name, value in vars(args).items():
        if isinstance(value, list):  # argparse reads "--option=--" as no value at all: []
            parser.error(f"argument --{name.replace('_', '-')}: expected one value, got none")
    try:
        check_shared_arguments(args)
        status: int = args.run(args)
        return status
    except CommandError as error:
        print(f"optuna-nas: error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into a command that stopped reading
        sys.stderr.close()
        return 0
    except KeyboardInterrupt as interrupt:
        from optuna_nas.cli._search import Stopped

        if isinstance(interrupt, Stopped):  # SIGTERM: the trials it cut short are failed with the reason
            print(f"optuna-nas: {interrupt}; finished trials are in the storage", file=sys.stderr)
            return interrupt.exit_status
        print("optuna-nas: interrupted; finished trials are in the storage", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
