"""Images per second of the objective's training loop against a plain hand-written PyTorch loop.

Both train the same architecture on the same in-memory data with the same optimizer, batch size and
batch order; runs alternate so that neither gets a warmer machine. Prints images/s for each loop and
the ratio (objective / plain).

    python benchmarks/train_throughput.py [--dataset mnist5k] [--epochs 3] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch.nn import functional as F

from optuna_nas import data
from optuna_nas import models
from optuna_nas import training as _training
from optuna_nas.spaces import ChainLayer
from optuna_nas.spaces import ChainSpec

SPEC = ChainSpec(
    layers=(
        ChainLayer("conv", kernel=3, filters=32, stride=1),
        ChainLayer("max_pool"),
        ChainLayer("conv", kernel=3, filters=64, stride=1),
        ChainLayer("max_pool"),
        ChainLayer("fc", units=128),
    )
)


def plain_loop(model, images, labels, *, epochs, batch_size, seed):
    """What a user writes by hand: Adam, shuffled minibatches, loss read every step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(labels), generator=generator)
        running = 0.0
        for start in range(0, len(labels), batch_size):
            index = order[start : start + batch_size]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(images[index]), labels[index])
            loss.backward()
            optimizer.step()
            running += loss.item() * len(index)


def objective_loop(model, images, labels, *, epochs, batch_size, seed):
    settings = _training.TrainingSettings(epochs=epochs, batch_size=batch_size)
    optimizer = _training.make_optimizer(model, settings)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        _training.train_epoch(model, optimizer, images, labels, batch_size=batch_size, generator=generator)


def timed(loop, dataset, args) -> float:
    torch.manual_seed(0)
    model = models.build_model(SPEC, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    start = time.perf_counter()
    loop(model, dataset.train_x, dataset.train_y, epochs=args.epochs, batch_size=args.batch_size, seed=0)
    return args.epochs * len(dataset.train_y) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    dataset = data.load(args.dataset)
    timed(plain_loop, dataset, argparse.Namespace(epochs=1, batch_size=args.batch_size))  # warm-up
    plain, ours = [], []
    for _ in range(args.repeats):
        plain.append(timed(plain_loop, dataset, args))
        ours.append(timed(objective_loop, dataset, args))
    plain_rate, our_rate = statistics.median(plain), statistics.median(ours)
    print(
        f"dataset={args.dataset} train images={len(dataset.train_y)} epochs={args.epochs} "
        f"batch={args.batch_size} threads={torch.get_num_threads()} device=cpu"
    )
    print(f"plain PyTorch loop : {plain_rate:8.1f} images/s  (runs: {', '.join(f'{r:.0f}' for r in plain)})")
    print(f"objective's loop   : {our_rate:8.1f} images/s  (runs: {', '.join(f'{r:.0f}' for r in ours)})")
    print(f"ratio objective/plain: {our_rate / plain_rate:.3f}")


if __name__ == "__main__":
    main()
