"""Soak: many ``optuna-nas worker`` processes on one PostgreSQL study of the tabular NAS-Bench-201
objective (CIFAR-10 validation signal, instant trials), as a long search on a cluster runs them.

One ``optuna-nas search`` saves the study's settings with the first trials, then ``--workers``
processes run the rest of ``--trials`` with ``--sampler``. Printed: trials per second (the workers'
wall time), errors (workers that did not exit 0, trials not COMPLETE or yielded; must be 0),
architectures evaluated twice, and the time spent inside the sampler per trial (its hooks, summed
in each process), for the first and the last 200 trials by number.

The PostgreSQL server is ``--storage``, else ``OPTUNA_NAS_TEST_POSTGRES_URL``; with neither, a
throwaway cluster is started in a temporary folder (PostgreSQL's ``initdb`` and ``pg_ctl``) and
stopped at the end. The study ``soak`` is deleted first if it is there.

    python benchmarks/soak.py [--storage postgresql://...] [--workers 8] [--trials 2000] [--sampler evolution]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

import optuna

STUDY = "soak"
BENCHMARK = ["--benchmark", "nasbench201", "--dataset", "cifar10", "--no-mlflow", "--no-progress"]
DUPLICATE_KEY = "optuna_nas:duplicate_of"
# The sampler's hooks Optuna calls for each trial; their time is the sampler's time per trial.
HOOKS = ("before_trial", "infer_relative_search_space", "sample_relative", "sample_independent", "after_trial")


def run_command(argv: list[str], timings: str) -> int:
    """``optuna-nas ARGV`` in this process, the time inside the sampler's hooks per trial written to
    ``timings`` (one JSON line per trial: number, seconds).
    """
    from optuna_nas.cli import _search
    from optuna_nas.cli import main

    made = _search.make_sampler
    spent: collections.Counter[int] = collections.Counter()

    def timed(sampler: optuna.samplers.BaseSampler, name: str) -> None:
        inner = getattr(sampler, name)

        def hook(*args, **kwargs):  # (study, trial, ...): the trial is the second argument
            start = time.perf_counter()
            try:
                return inner(*args, **kwargs)
            finally:
                number = args[1].number
                spent[number] += time.perf_counter() - start
                if name == "after_trial":
                    with open(timings, "a") as f:
                        f.write(json.dumps([number, spent.pop(number)]) + "\n")

        setattr(sampler, name, hook)

    def make_timed_sampler(*args, **kwargs):
        sampler = made(*args, **kwargs)
        for name in HOOKS:
            timed(sampler, name)
        return sampler

    _search.make_sampler = make_timed_sampler
    return main(argv)


@contextlib.contextmanager
def throwaway_postgres() -> Iterator[str]:
    """A new PostgreSQL cluster in a temporary folder on a free loopback port, its URL; stopped and
    removed at the end. Run as root, the server runs as the ``postgres`` user (it refuses root).
    """
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    bin_dir = os.path.dirname(found[-1]) if found else os.path.dirname(shutil.which("pg_ctl") or "")
    if not bin_dir:
        raise SystemExit("no PostgreSQL server binaries (pg_ctl): give --storage postgresql://...")
    folder = tempfile.mkdtemp(prefix="soak-postgres-")
    as_root = os.geteuid() == 0

    def run(*command: str) -> None:
        line = " ".join(command)
        subprocess.run(["su", "postgres", "-c", line] if as_root else ["sh", "-c", line], check=True)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if as_root:
        shutil.chown(folder, user="postgres")
    data = os.path.join(folder, "data")
    run(f"{bin_dir}/initdb", "-D", data, "-A", "trust", "-U", "postgres", ">/dev/null")
    options = f"'-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=200'"
    run(f"{bin_dir}/pg_ctl", "-D", data, "-o", options, "-l", f"{folder}/log", "-w", "start", ">/dev/null")
    try:
        run(f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "soak")
        yield f"postgresql://postgres@127.0.0.1:{port}/soak"
    finally:
        run(f"{bin_dir}/pg_ctl", "-D", data, "-m", "fast", "stop", ">/dev/null")
        shutil.rmtree(folder, ignore_errors=True)


def soak(url: str, *, workers: int, trials: int, sampler: str) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with contextlib.suppress(KeyError):
        optuna.delete_study(study_name=STUDY, storage=url)
    first = trials - workers * ((trials - 1) // workers)  # the search's trials; the workers share the rest
    share = (trials - first) // workers
    with tempfile.TemporaryDirectory() as folder:
        timings = os.path.join(folder, "timings.jsonl")

        def command(*argv: str) -> list[str]:
            return [sys.executable, __file__, "--timings", timings, "--cli", *argv]

        study = ["--storage", url, "--study-name", STUDY]
        search = [*study, *BENCHMARK, "--sampler", sampler, "--n-trials", str(first)]
        subprocess.run(command("search", *search), check=True, stdout=subprocess.DEVNULL)
        started = time.monotonic()
        processes = [
            subprocess.Popen(
                command("worker", *study, "--no-progress", "--n-trials", str(share)),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(workers)
        ]
        errors = [p.communicate()[1] for p in processes]
        wall = time.monotonic() - started
        with open(timings) as f:
            spent = dict(json.loads(line) for line in f)

    done = optuna.load_study(study_name=STUDY, storage=url).get_trials(deepcopy=False)
    yielded = [t for t in done if DUPLICATE_KEY in t.system_attrs and t.state == optuna.trial.TrialState.PRUNED]
    trained = [t for t in done if DUPLICATE_KEY not in t.system_attrs]
    bad_trials = [t.number for t in trained if t.state != optuna.trial.TrialState.COMPLETE]
    bad_workers = [
        (p.returncode, e.strip().splitlines()[-1:]) for p, e in zip(processes, errors, strict=True) if p.returncode
    ]
    copies = collections.Counter(tuple(sorted(t.params.items())) for t in trained)
    worker_trials = len(done) - first

    def per_trial(numbers: list[int]) -> str:
        seconds = [spent[n] for n in numbers if n in spent]
        return f"mean {1000 * statistics.mean(seconds):.2f} ms, median {1000 * statistics.median(seconds):.2f} ms"

    numbers = sorted(t.number for t in done)
    print(f"storage: PostgreSQL; sampler {sampler}; {workers} workers (optuna-nas worker) after one search")
    print(f"trials: {len(done)} ({first} by the search, {worker_trials} by the workers in {wall:.1f} s)")
    print(f"trials per second (workers): {worker_trials / wall:.1f}")
    print(
        f"errors: {len(bad_workers) + len(bad_trials)} "
        f"(workers not exiting 0: {bad_workers}; trials failed: {bad_trials})"
    )
    print(
        f"evaluated twice: {sum(c - 1 for c in copies.values())}; yielded to a trial holding the same: {len(yielded)}"
    )
    print(f"sampler time per trial, first 200 trials: {per_trial(numbers[:200])}")
    print(f"sampler time per trial, last 200 trials:  {per_trial(numbers[-200:])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--storage", default=os.environ.get("OPTUNA_NAS_TEST_POSTGRES_URL"))
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--sampler", default="evolution")
    parser.add_argument("--timings", help=argparse.SUPPRESS)
    parser.add_argument("--cli", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cli:
        sys.exit(run_command(args.cli, args.timings))
    if args.workers < 1 or args.trials <= args.workers:
        parser.error("--workers must be >= 1 and --trials above it")
    if args.storage:
        soak(args.storage, workers=args.workers, trials=args.trials, sampler=args.sampler)
        return
    with throwaway_postgres() as url:
        soak(url, workers=args.workers, trials=args.trials, sampler=args.sampler)


if __name__ == "__main__":
    main()
