"""Search efficiency on NAS-Bench-201: every sampler, many seeds, side by side with Optuna's own.

For each sampler and seed, a fresh in-memory study of ``--budget`` trials runs the tabular
objective (12-epoch validation accuracy by default: the signal the benchmark allows). The answer is
the trial with the best signal; it is judged by the same dataset's 200-epoch test accuracy, which
only this script, never the objective or the sampler, reads.

    python benchmarks/nasbench201.py --samplers random,tpe --budget 100 --seeds 20 \
        --dataset cifar10 [--table PATH] [--out results.json] [--multi-objective] [--seed-offset K] \
        [--canonical-key] [--options '{"metaqnn": {"learning_rate": 0.1}}']

The objective returns accuracy as a fraction, as every objective of the package does; this script
prints the signal and the test accuracy in the table's percent.

``--reward`` sets our samplers' reward (``first``, ``dominance``, ``linear:W1,W2,...``,
``mnas:TARGET``); without it they use their defaults. ``--canonical-key`` gives the project's
samplers ``dedup_key=NASBench201Space().dedup_key`` (cells that compute the same function count as
one); ``--options`` passes settings to named samplers.

Multi-objective mode runs the objective as (accuracy, params, FLOPs) and also reports each
sampler's hypervolume of (signal accuracy, FLOPs), normalised to [0, 1] by the reference point
(accuracy 0, the largest FLOPs of any cell on that dataset).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import statistics
import sys
import time

import optuna

from optuna_nas.analysis import hypervolume_of_points
from optuna_nas.analysis import pareto_mask
from optuna_nas.objectives import NASBench201
from optuna_nas.objectives._nasbench201 import _costs
from optuna_nas.samplers import available_samplers
from optuna_nas.samplers import create_sampler
from optuna_nas.samplers import rewards
from optuna_nas.spaces import NASBench201Space

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _timing import TimedSampler

from optuna_nas.objectives import DEFAULT_TABLE

#: Samplers made for the space they search (predictor-guided ones).
SPACE_SAMPLERS = ("evolution-guided", "pnas")


def judge_column(table: str, dataset: str) -> dict[str, float]:
    """The 200-epoch test accuracy per arch: read here, to judge answers, and nowhere else."""
    with open(table, newline="") as f:
        return {row["arch"]: float(row[f"{dataset}_test_200ep"]) for row in csv.DictReader(f)}


def run_one(name: str, seed: int, args: argparse.Namespace, judge: dict[str, float]) -> dict:
    objective = NASBench201(args.table, args.dataset, multi_objective=args.multi_objective)
    options = dict(args.options.get(name, {}))
    if args.reward and name not in ("random", "tpe", "nsga2"):
        options["reward"] = rewards.from_string(args.reward)
    if args.canonical_key and name not in ("random", "tpe", "nsga2", "pnas"):  # PNAS keys cells by its space
        options["dedup_key"] = NASBench201Space().dedup_key
    if name in SPACE_SAMPLERS:
        options["space"] = NASBench201Space()
    sampler = TimedSampler(create_sampler(name, seed=seed, **options))
    study = optuna.create_study(directions=objective.directions, sampler=sampler)
    start = time.perf_counter()
    study.optimize(objective, n_trials=args.budget)
    wall = time.perf_counter() - start
    curve, best, answer = [], float("-inf"), None
    for trial in study.trials:
        if trial.state == optuna.trial.TrialState.COMPLETE and trial.values[0] > best:
            best, answer = trial.values[0], trial
        curve.append(100.0 * best)  # the objective's fraction, reported in the table's percent
    arch = answer.user_attrs["arch"]
    run = {
        "sampler": name,
        "seed": seed,
        "arch": arch,
        "signal": 100.0 * best,
        "test_200ep": judge[arch],
        "curve": curve,
        "wall_s": wall,
        "sampler_s": sampler.seconds,
    }
    if args.multi_objective:
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        points = [[t.values[0], t.values[2]] for t in done]
        mask = pareto_mask([[-a, f] for a, f in points])
        front = {(t.user_attrs["arch"], a, f) for t, (a, f), keep in zip(done, points, mask, strict=True) if keep}
        run["pareto"] = [list(item) for item in sorted(front, key=lambda item: item[2])]
        reference = (0.0, max(flops for _, flops in _costs(args.dataset).values()))
        volume = hypervolume_of_points(points, reference, ("maximize", "minimize"))
        run["hypervolume"] = volume / reference[1]  # accuracy is a fraction: the box is 1 x reference
    return run


def summarise(runs: list[dict], optimum: float, multi_objective: bool) -> list[str]:
    by_sampler: dict[str, list[dict]] = {}
    for run in runs:
        by_sampler.setdefault(run["sampler"], []).append(run)
    tpe_time = statistics.mean(r["sampler_s"] for r in by_sampler["tpe"]) if "tpe" in by_sampler else None
    header = (
        f"{'sampler':<18} {'signal %':>8} {'test_200ep % mean +- std':>26} {'regret':>8} "
        f"{'sampler s/run':>14} {'vs TPE':>7}"
    )
    lines = [header + (f" {'hypervolume':>12}" if multi_objective else "")]
    for name, group in by_sampler.items():
        tests = [r["test_200ep"] for r in group]
        std = statistics.stdev(tests) if len(tests) > 1 else 0.0
        sampler_time = statistics.mean(r["sampler_s"] for r in group)
        ratio = f"{sampler_time / tpe_time:7.2f}" if tpe_time else f"{'-':>7}"
        signal = statistics.mean(r["signal"] for r in group)
        line = (
            f"{name:<18} {signal:>8.2f} {statistics.mean(tests):>17.2f} +- {std:<5.2f} "
            f"{optimum - statistics.mean(tests):>8.2f} {sampler_time:>14.3f} {ratio}"
        )
        if multi_objective:
            line += f" {statistics.mean(r['hypervolume'] for r in group):>12.4f}"
        lines.append(line)
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samplers", default="random,tpe")
    parser.add_argument("--budget", type=int, default=100)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--seed-offset", type=int, default=0)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--out", default=None)
    parser.add_argument("--multi-objective", action="store_true")
    parser.add_argument("--canonical-key", action="store_true")
    parser.add_argument("--reward", default=None, help="our samplers' reward: first, dominance, linear:W,..., mnas:T")
    parser.add_argument("--options", default="{}", help="JSON: {sampler name: {argument: value}}")
    args = parser.parse_args()
    try:
        args.options = json.loads(args.options)
        if not isinstance(args.options, dict) or not all(isinstance(v, dict) for v in args.options.values()):
            raise ValueError
    except ValueError:
        parser.error(f"--options must be a JSON object of objects, got {args.options!r}")

    names = [name for name in args.samplers.split(",") if name]
    unknown = [name for name in names if name not in available_samplers()]
    if unknown or args.budget < 1 or args.seeds < 1:
        parser.error(
            f"--samplers must be among {available_samplers()} (got {unknown}); --budget and --seeds must be >= 1"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    judge = judge_column(args.table, args.dataset)
    optimum = max(judge.values())
    runs = []
    for name in names:
        for seed in range(args.seed_offset, args.seed_offset + args.seeds):
            runs.append(run_one(name, seed, args, judge))
    print(
        f"NAS-Bench-201 {args.dataset}: budget {args.budget}, {args.seeds} seeds "
        f"(from {args.seed_offset}), optimum {optimum:.2f}, table {os.path.basename(args.table)}"
    )
    print("\n".join(summarise(runs, optimum, args.multi_objective)))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"dataset": args.dataset, "budget": args.budget, "runs": runs}, f)


if __name__ == "__main__":
    main()
