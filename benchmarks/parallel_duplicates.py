"""Architectures trained twice by parallel workers on one SQLite study.

For each sampler: ``--trials`` trials of the tabular NAS-Bench-201 objective (CIFAR-10 validation
signal) with a pause after the decisions (``--pause``, as training would take), once with 4 threads
(``n_jobs=4``) and once with 4 processes. Printed per run: trials, distinct architectures among the
trials that trained, architectures trained twice, and trials that yielded (they ended on an
architecture another trial held, and stopped pruned and untrained).

    python benchmarks/parallel_duplicates.py --samplers metaqnn,evolution [--trials 100] [--pause 0.02]
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time

import optuna

from optuna_nas.objectives import DEFAULT_TABLE
from optuna_nas.objectives import NASBench201
from optuna_nas.samplers import available_samplers
from optuna_nas.samplers import create_sampler

DUPLICATE_KEY = "optuna_nas:duplicate_of"


class PausedObjective:
    def __init__(self, pause: float) -> None:
        self.inner = NASBench201(DEFAULT_TABLE)
        self.pause = pause

    def __call__(self, trial: optuna.Trial) -> float:
        value = self.inner(trial)  # decides (space.suggest), then looks the cell up
        time.sleep(self.pause)
        return value


def worker(name: str, url: str, n_trials: int, seed: int, pause: float) -> None:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(storage=url, study_name="bench", sampler=create_sampler(name, seed=seed))
    study.optimize(PausedObjective(pause), n_trials=n_trials)


def count(url: str) -> tuple[int, int, int, int]:
    study = optuna.load_study(storage=url, study_name="bench")
    trained = [t for t in study.trials if DUPLICATE_KEY not in t.system_attrs]
    copies = collections.Counter(tuple(t.params.values()) for t in trained)
    return len(study.trials), len(copies), sum(c - 1 for c in copies.values()), len(study.trials) - len(trained)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", default="metaqnn,evolution")
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--pause", type=float, default=0.02)
    parser.add_argument("--worker", nargs=4, metavar=("SAMPLER", "URL", "N_TRIALS", "SEED"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, url, n_trials, seed = args.worker
        worker(name, url, int(n_trials), int(seed), args.pause)
        return
    names = [n for n in args.samplers.split(",") if n]
    if any(n not in available_samplers() for n in names) or args.trials < 4:
        parser.error(f"--samplers must be among {available_samplers()}; --trials must be >= 4")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    print(
        f"{'sampler':<12} {'workers':<12} {'trials':>6} {'distinct trained':>17} {'trained twice':>14} {'yielded':>8}"
    )
    for name in names:
        for mode in ("4 threads", "4 processes"):
            with tempfile.TemporaryDirectory() as folder:
                url = f"sqlite:///{os.path.join(folder, 'bench.db')}"
                optuna.create_study(storage=url, study_name="bench", direction="maximize")
                if mode == "4 threads":
                    study = optuna.load_study(storage=url, study_name="bench", sampler=create_sampler(name, seed=0))
                    study.optimize(PausedObjective(args.pause), n_trials=args.trials, n_jobs=4)
                else:
                    share = args.trials // 4
                    workers = [
                        subprocess.Popen(
                            [
                                sys.executable,
                                __file__,
                                "--pause",
                                str(args.pause),
                                "--worker",
                                name,
                                url,
                                str(share),
                                str(seed),
                            ]
                        )
                        for seed in range(4)
                    ]
                    if any(w.wait() for w in workers):
                        raise SystemExit("a worker failed")
                trials, distinct, twice, yielded = count(url)
            print(f"{name:<12} {mode:<12} {trials:>6} {distinct:>17} {twice:>14} {yielded:>8}", flush=True)


if __name__ == "__main__":
    main()
