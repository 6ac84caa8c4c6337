"""How well each predictor ranks NAS-Bench-201 cells it has not seen, by training-set size.

For each seed, the 15,625 cells of the shipped table are shuffled; the first ``--test-size`` (1,000)
are held out, and each predictor is fitted on the next N cells for every N of ``--train-sizes``
(nested: the 100 include the 50). Training and evaluation both use the dataset's 12-epoch
validation accuracy column (``{dataset}_valid_12ep``); no test column is read. Reported per
predictor and N, over the seeds: Spearman's rho and Kendall's tau on the held-out cells (mean +-
standard deviation), the seconds to fit, and the seconds to predict the held-out cells.

The predictors run with their defaults, from the package's encoders: ``VectorEncoder`` (fitted on
all 15,625 cells; it reads no scores) for the forest, boosting and the MLP, ``TokenEncoder`` for the
LSTM. The yardsticks: ranking cells by their network's parameter count or FLOPs (no training), a
random forest fitted on parameters and FLOPs only (``cost-forest``), and random scores; and, to show
what the path and live-op features add, the forest on the one-hot of the edges' ops alone
(``onehot-forest``).

    python benchmarks/predictors.py [--dataset cifar10] [--train-sizes 50,100,200,400] [--seeds 5] \
        [--first-seed 10] [--test-size 1000] [--predictors forest,boosting,mlp,lstm,...] [--out runs.json]

torch runs on one thread (the neural ensembles set it for their own math too).
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from optuna_nas.objectives import DEFAULT_TABLE
from optuna_nas.objectives import NASBench201
from optuna_nas.predictors import LSTMEnsemble
from optuna_nas.predictors import MLPEnsemble
from optuna_nas.predictors import TokenEncoder
from optuna_nas.predictors import TreeEnsemble
from optuna_nas.predictors import VectorEncoder
from optuna_nas.predictors import rank_correlation
from optuna_nas.spaces import NASBench201Spec

# name -> (input kind, maker from a seed)
PREDICTORS: dict[str, tuple[str, Callable[[int], Any]]] = {
    "forest": ("vectors", lambda seed: TreeEnsemble(seed=seed)),
    "boosting": ("vectors", lambda seed: TreeEnsemble(model="gradient_boosting", seed=seed)),
    "mlp": ("vectors", lambda seed: MLPEnsemble(seed=seed)),
    "lstm": ("tokens", lambda seed: LSTMEnsemble(seed=seed)),
    "onehot-forest": ("onehot", lambda seed: TreeEnsemble(seed=seed)),
    "cost-forest": ("costs", lambda seed: TreeEnsemble(max_features=1.0, seed=seed)),
}
#: Yardsticks that need no training: a score per cell.
RANKINGS = ("params", "flops", "random")


def load(dataset: str) -> tuple[list[str], np.ndarray]:
    """Every cell's arch string and its 12-epoch validation accuracy (the table's percent)."""
    with open(DEFAULT_TABLE, newline="") as f:
        rows = [(row["arch"], float(row[f"{dataset}_valid_12ep"])) for row in csv.DictReader(f)]
    return [arch for arch, _ in rows], np.array([score for _, score in rows])


def rows(data: Any, indices: np.ndarray) -> Any:
    """The given rows of an array, or of a list of token sequences."""
    return [data[i] for i in indices] if isinstance(data, list) else data[indices]


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    archs, scores = load(args.dataset)
    specs = [NASBench201Spec.from_arch_str(arch) for arch in archs]
    objective = NASBench201(DEFAULT_TABLE, args.dataset)
    vectors = VectorEncoder().fit(specs)
    onehot = VectorEncoder(features=[name for name in vectors.feature_names if name.startswith("edge_")])
    inputs: dict[str, Any] = {
        "vectors": vectors.transform(specs),
        "onehot": onehot.transform(specs),
        "tokens": TokenEncoder().fit(specs).encode_many(specs),
        "costs": np.array([objective.cost(arch) for arch in archs], dtype=np.float64),
    }
    rankings = {"params": inputs["costs"][:, 0], "flops": inputs["costs"][:, 1]}
    for name in args.predictors:  # untimed: the first fit imports scikit-learn or torch
        kind, make = PREDICTORS[name]
        make(0).fit(rows(inputs[kind], np.arange(8)), scores[:8])
    runs = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        order = np.random.default_rng(seed).permutation(len(archs))
        test, pool = order[: args.test_size], order[args.test_size :]
        y_test = scores[test]
        for name in RANKINGS:
            guess = np.random.default_rng(seed).random(len(test)) if name == "random" else rankings[name][test]
            runs.append({"predictor": name, "n": 0, "seed": seed, **rank_correlation(y_test, guess)})
        for n in args.train_sizes:
            train = pool[:n]
            for name in args.predictors:
                kind, make = PREDICTORS[name]
                x_train, x_test = rows(inputs[kind], train), rows(inputs[kind], test)
                predictor = make(seed)
                start = time.perf_counter()
                predictor.fit(x_train, scores[train])
                fitted = time.perf_counter()
                mean, _ = predictor.predict(x_test)
                predicted = time.perf_counter()
                runs.append(
                    {
                        "predictor": name,
                        "n": n,
                        "seed": seed,
                        **rank_correlation(y_test, mean),
                        "fit_s": fitted - start,
                        "predict_s": predicted - fitted,
                    }
                )
                print(
                    f"seed {seed} n {n:>4} {name:<12} spearman {runs[-1]['spearman']:.3f} "
                    f"fit {runs[-1]['fit_s']:.2f} s",
                    flush=True,
                )
    return runs


def summarise(runs: list[dict[str, Any]], test_size: int) -> list[str]:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for item in runs:
        groups.setdefault((item["predictor"], item["n"]), []).append(item)
    lines = [
        f"| predictor | train cells | Spearman | Kendall | fit s | predict s ({test_size} cells) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for (name, n), group in sorted(groups.items(), key=lambda item: (item[0][1], item[0][0] not in RANKINGS)):

        def spread(key: str, group: list[dict[str, Any]] = group) -> str:
            values = [item[key] for item in group]
            std = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):+.3f} +- {std:.3f}"

        times = (
            f"{statistics.mean(i['fit_s'] for i in group):.2f} | {statistics.mean(i['predict_s'] for i in group):.3f}"
            if "fit_s" in group[0]
            else "- | -"
        )
        size = n if n else "- (no training)"
        lines.append(f"| {name} | {size} | {spread('spearman')} | {spread('kendall')} | {times} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="cifar10", choices=["cifar10", "cifar100", "imagenet16"])
    parser.add_argument("--train-sizes", default="50,100,200,400")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=10)
    parser.add_argument("--test-size", type=int, default=1000)
    parser.add_argument("--predictors", default=",".join(PREDICTORS))
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    args.train_sizes = [int(n) for n in args.train_sizes.split(",")]
    args.predictors = [name.strip() for name in args.predictors.split(",")]
    unknown = [name for name in args.predictors if name not in PREDICTORS]
    if unknown:
        parser.error(f"unknown predictor(s) {unknown}; known: {list(PREDICTORS)}")
    if args.test_size + max(args.train_sizes) > 15_625:
        parser.error("--test-size plus the largest train size must leave no cell in both (15,625 cells)")
    torch.set_num_threads(1)
    start = time.perf_counter()
    runs = run(args)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(runs, f, indent=1)
    print(f"\n{args.dataset}, {args.seeds} seeds from {args.first_seed}, {time.perf_counter() - start:.0f} s in all\n")
    print("\n".join(summarise(runs, args.test_size)))


if __name__ == "__main__":
    main()
