"""Milliseconds per trial spent inside each sampler, after 100 and after 1,000 finished trials.

Two figures per cell: ``first`` is the first trial of a process that joins the study (it rebuilds
the sampler's state from all finished trials: Q-table replay, population), ``then`` the median of
the following trials (state extended by one trial at a time).

Two spaces: the NAS-Bench-201 cell (tabular objective) and ``ChainSpace`` (a fake objective that
scores a spec by its hash, so no training runs). For each space and history size, the history is
made once with Optuna's random sampler; every sampler then gets a study holding that same history
and runs ``--trials`` more trials, timed inside the sampler. TPE runs in the same process as the
yardstick.

    python benchmarks/sampler_overhead.py --samplers random,tpe [--histories 100,1000,10000] [--trials 20]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

import optuna

from optuna_nas import spaces
from optuna_nas.objectives import NASBench201
from optuna_nas.samplers import available_samplers
from optuna_nas.samplers import create_sampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import TimedSampler

from optuna_nas.objectives import DEFAULT_TABLE as TABLE


class FakeChainObjective:
    """Scores a chain by its spec hash: deterministic, instant, and unrelated to any training."""

    def __init__(self) -> None:
        self.space = spaces.ChainSpace()

    def __call__(self, trial: optuna.Trial) -> float:
        return int(self.space.suggest(trial).spec_hash, 16) % 10_000 / 100.0


def history(objective, size: int) -> list[optuna.trial.FrozenTrial]:
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=size)
    return study.trials


def threaded_ms_per_trial(name: str, objective, trials: list, n_trials: int) -> float:
    """Sampler milliseconds per trial with 4 threads, after a warm-up trial."""
    sampler = TimedSampler(create_sampler(name, seed=0))
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.add_trials(trials)
    study.optimize(objective, n_trials=1)
    before = sampler.seconds
    study.optimize(objective, n_trials=n_trials, n_jobs=4)
    return 1000.0 * (sampler.seconds - before) / n_trials


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", default="random,tpe")
    parser.add_argument("--histories", default="100,1000,10000")
    parser.add_argument("--trials", type=int, default=20)
    args = parser.parse_args()
    names = [n for n in args.samplers.split(",") if n]
    unknown = [n for n in names if n not in available_samplers()]
    if unknown:
        parser.error(f"--samplers must be among {available_samplers()}, got {unknown}")
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    objectives = {"nb201": NASBench201(TABLE), "chain": FakeChainObjective()}
    sizes = [int(s) for s in args.histories.split(",")]
    print(f"ms per trial inside the sampler (first trial / median of the next {args.trials - 1})")
    print(
        f"{'space':<7} {'sampler':<12}"
        + "".join(f" {'after ' + str(s):>18}" for s in sizes)
        + f" {'n_jobs=4 after ' + str(sizes[-1]):>24}"
    )
    for space_name, objective in objectives.items():
        histories = {size: history(objective, size) for size in sizes}
        for name in names:
            cells = []
            for size in sizes:
                sampler = TimedSampler(create_sampler(name, seed=0))
                study = optuna.create_study(direction="maximize", sampler=sampler)
                study.add_trials(histories[size])
                per_trial = []
                for _ in range(args.trials):
                    before = sampler.seconds
                    study.optimize(objective, n_trials=1)
                    per_trial.append(1000.0 * (sampler.seconds - before))
                cells.append(f"{per_trial[0]:.1f} / {statistics.median(per_trial[1:]):.1f}")
            threaded = threaded_ms_per_trial(name, objective, histories[sizes[-1]], args.trials)
            print(
                f"{space_name:<7} {name:<12}" + "".join(f" {c:>18}" for c in cells) + f" {threaded:>24.1f}", flush=True
            )


if __name__ == "__main__":
    main()
