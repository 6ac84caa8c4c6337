"""Count params, MACs and FLOPs of the real NAS-Bench-201 network for every cell of the table.

Builds each cell's network with the project's own builder and counts it with thop (FLOPs = 2 x
MACs), for CIFAR-10 (3x32x32, 10 classes) and ImageNet16-120 (3x16x16, 120 classes). CIFAR-100
differs from CIFAR-10 only in the classifier (64 -> 100 instead of 64 -> 10), so its counts are the
CIFAR-10 counts plus that layer's exact difference; the tests rebuild a few cells for all three
datasets and check the file against fresh counts.

    python benchmarks/nasbench201_costs.py [--table PATH] \
        [--out optuna_nas/objectives/data/nasbench201_costs.csv] [--workers 2]
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing
import os
import time

HERE = os.path.dirname(os.path.abspath(__file__))
from optuna_nas.objectives import DEFAULT_TABLE  # noqa: E402
from optuna_nas.objectives._nasbench201 import NB201_NETWORKS  # noqa: E402

DEFAULT_OUT = os.path.normpath(
    os.path.join(HERE, os.pardir, "optuna_nas", "objectives", "data", "nasbench201_costs.csv")
)
FINAL_CHANNELS = 64


def _count(arch: str) -> list[object]:
    import torch

    from optuna_nas.metrics import count_cost
    from optuna_nas.models import build_model
    from optuna_nas.spaces import NASBench201Spec

    torch.set_num_threads(1)
    spec = NASBench201Spec.from_arch_str(arch)
    row: list[object] = [arch]
    for shape, classes in (NB201_NETWORKS["cifar10"], NB201_NETWORKS["imagenet16"]):
        cost = count_cost(build_model(spec, input_shape=shape, num_classes=classes), input_shape=shape)
        row += [cost.params, cost.macs]
    c10_params, c10_macs = row[1], row[2]
    extra = NB201_NETWORKS["cifar100"][1] - NB201_NETWORKS["cifar10"][1]
    row[3:3] = [c10_params + FINAL_CHANNELS * extra + extra, c10_macs + FINAL_CHANNELS * extra]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--table", default=DEFAULT_TABLE)
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    with open(args.table, newline="") as f:
        archs = [row["arch"] for row in csv.DictReader(f)]
    start = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        rows = pool.map(_count, archs, chunksize=64)
    header = ["arch"]
    for dataset in ("cifar10", "cifar100", "imagenet16"):
        header += [f"{dataset}_params", f"{dataset}_macs"]
    with open(args.out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    print(f"{len(rows)} cells counted in {time.perf_counter() - start:.0f} s -> {args.out}")


if __name__ == "__main__":
    main()
