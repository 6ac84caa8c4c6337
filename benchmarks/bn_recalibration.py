"""Do short trainings rank networks as long ones do? BatchNorm running averages against recalibration.

Trains distinct networks sampled with a fixed seed from ``NASBench201Space`` (cells) and from
``ChainSpace`` (chains) on mnist5k, each once for ``--epochs`` epochs (10) with the settings of
``optuna-nas search`` (Adam, learning rate 1e-3, batch 128, weights and batch order from a seed).
After epochs 1, 2 and the last, a copy of the network is scored on the validation split twice:
in evaluation mode with the running averages kept during training (before), and after
recalibrating its BatchNorm statistics on training batches as the objective does (after). The
copy is thrown away, so the training run is the same for both. Prints, for cells and chains, the
Spearman correlation of the 1-epoch and 2-epoch scores with the last epoch's score, taking as the
reference the last epoch's recalibrated score and, as a check that the gain is not made by that
choice, its score with running averages; and the gain (after - before) with a 95 % interval from
resampling the networks.

Cells whose output is cut off from the input (every path through ``none``) compute a constant and
score chance whatever they learn; they are skipped. Networks are distinct by canonical spec hash.

Size: torch runs on one thread. At the benchmark's own width (16, 32 and 64 channels) a
NAS-Bench-201 network takes 15 to 60 s per epoch of mnist5k on one CPU thread, 30 networks for 10
epochs about 3 hours; so the cells are built with ``--channels`` 4 (4, 8 and 16 channels; the
depth, 5 cells per stage, is kept), 5 to 15 s per epoch. Chains keep the command's default widths
(under 2 s per epoch).

    python benchmarks/bn_recalibration.py [--seed 0] [--n-networks 30] [--epochs 10] [--channels 4] [--out scores.json]
    python benchmarks/bn_recalibration.py --report scores.json    # the figures again, no training
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import time

import numpy as np
import optuna
import torch
from scipy.stats import spearmanr

from optuna_nas import data
from optuna_nas import models
from optuna_nas import spaces
from optuna_nas import training as _training
from optuna_nas.models import _nasbench201


def sample_specs(space: spaces.Space, count: int, seed: int) -> list[spaces.ArchitectureSpec]:
    """``count`` distinct specs from ``space``, drawn by Optuna's random sampler with ``seed``."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs: dict[str, spaces.ArchitectureSpec] = {}
    while len(specs) < count:
        trial = study.ask()
        spec = space.suggest(trial)
        study.tell(trial, 0.0)
        if isinstance(spec, spaces.NASBench201Spec) and spec.canonical_dict()["function"] is None:
            continue  # the output is cut off from the input: a constant network
        specs.setdefault(spec.spec_hash, spec)
    return list(specs.values())


def scores(model, dataset, *, batches: int, batch_size: int, seed: int) -> tuple[float, float]:
    """Validation accuracy with the running averages, and after recalibration (on a copy)."""
    before = _training.evaluate(model, dataset.val_x, dataset.val_y)
    recalibrated = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    _training.recalibrate_batchnorm(
        recalibrated, dataset.train_x, batches=batches, batch_size=batch_size, generator=generator
    )
    after = _training.evaluate(recalibrated, dataset.val_x, dataset.val_y)
    return before, after


def run_network(
    spec, dataset, *, epochs: int, checkpoints: set[int], batches: int, seed: int, channels_last: bool = False
) -> dict:
    settings = _training.TrainingSettings(epochs=epochs, batch_size=128, learning_rate=1e-3)
    model = models.build_model(spec, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    models.initialize_parameters(model, seed=seed)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = _training.make_optimizer(model, settings)
    generator = torch.Generator().manual_seed(seed)
    result = {"spec": spec.summary(), "before": {}, "after": {}, "epoch_seconds": []}
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        _training.train_epoch(
            model, optimizer, dataset.train_x, dataset.train_y, batch_size=settings.batch_size, generator=generator
        )
        result["epoch_seconds"].append(time.perf_counter() - start)
        if epoch in checkpoints:
            before, after = scores(model, dataset, batches=batches, batch_size=settings.batch_size, seed=seed)
            result["before"][epoch], result["after"][epoch] = before, after
    return result


def report(kind: str, results: list[dict], epochs: int, *, resamples: int = 2000) -> None:
    """Mean accuracies and rank correlations; the gain (after - before) with a 95 % interval from
    resampling the networks (paired: the same networks before and after)."""

    def column(way: str, epoch: int) -> np.ndarray:
        return np.array([r[way][epoch] for r in results])

    rng = np.random.default_rng(0)
    draws = [rng.integers(0, len(results), len(results)) for _ in range(resamples)]

    print(f"\n{kind}: {len(results)} networks")
    print(f"  mean val accuracy  {'before':>8} {'after':>8}")
    for epoch in sorted({1, 2, epochs}):
        before, after = column("before", epoch).mean(), column("after", epoch).mean()
        print(f"  epoch {epoch:>2}           {before:8.3f} {after:8.3f}")
    last = spearmanr(column("before", epochs), column("after", epochs)).statistic
    print(f"  Spearman of the {epochs}-epoch scores before and after: {last:+.3f}")
    lag = {epoch: column("after", epoch) - column("before", epoch) for epoch in (2, epochs)}
    together = spearmanr(lag[2], lag[epochs]).statistic
    print(f"  Spearman of the lag (after - before) at 2 and {epochs} epochs: {together:+.3f}")
    for reference in ("after", "before"):
        label = "recalibrated" if reference == "after" else "running averages"
        target = column(reference, epochs)
        print(f"  Spearman vs {epochs}-epoch score ({label}):")
        for epoch in (1, 2):
            rho = {way: spearmanr(column(way, epoch), target).statistic for way in ("before", "after")}
            gains = [
                spearmanr(column("after", epoch)[d], target[d]).statistic
                - spearmanr(column("before", epoch)[d], target[d]).statistic
                for d in draws
            ]
            low, high = np.nanpercentile(gains, [2.5, 97.5])
            print(
                f"    {epoch}-epoch score: before {rho['before']:+.3f}  after {rho['after']:+.3f}  "
                f"gain {rho['after'] - rho['before']:+.3f} [{low:+.3f}, {high:+.3f}]"
            )


def load_scores(path: str) -> dict:
    """A file written by ``--out``, with the epochs as numbers again (JSON keys are strings)."""
    with open(path) as file:
        saved = json.load(file)
    for results in saved["results"].values():
        for result in results:
            for way in ("before", "after"):
                result[way] = {int(epoch): value for epoch, value in result[way].items()}
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-networks", type=int, default=30, help="per space")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--channels", type=int, default=4, help="stem channels of the NAS-Bench-201 networks")
    parser.add_argument("--batches", type=int, default=4, help="recalibration batches (the objective's default)")
    parser.add_argument("--spaces", default="cells,chains")
    parser.add_argument(
        "--channels-last",
        action="store_true",
        help="channels-last memory on the CPU too: the same networks, about 3 times faster at full cell width",
    )
    parser.add_argument("--out", default=None, help="write every score as JSON here")
    parser.add_argument("--report", default=None, help="print the figures of a file written by --out, train nothing")
    args = parser.parse_args()
    if args.epochs < 3:
        parser.error(
            f"--epochs must be at least 3 (scores after 1 and 2 epochs are compared with the last), got {args.epochs}"
        )
    if args.report:
        saved = load_scores(args.report)
        for kind, results in saved["results"].items():
            report(kind, results, saved["args"]["epochs"])
        return

    torch.set_num_threads(1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    # The builder reads the stem width when it builds; the skeleton (depth, reductions) is unchanged.
    _nasbench201.STEM_CHANNELS = args.channels
    dataset = data.load("mnist5k")
    if args.channels_last:
        dataset = dataclasses.replace(
            dataset,
            train_x=dataset.train_x.contiguous(memory_format=torch.channels_last),
            val_x=dataset.val_x.contiguous(memory_format=torch.channels_last),
        )
    kinds = {
        "cells": spaces.NASBench201Space(),
        # optuna-nas search --space chain defaults.
        "chains": spaces.ChainSpace(max_layers=6, filters=(16, 32, 64), input_size=min(dataset.input_shape[1:])),
    }
    checkpoints = {1, 2, args.epochs}
    print(
        f"mnist5k, {args.n_networks} networks per space, seed {args.seed}, {args.epochs} epochs, "
        f"cell stem channels {args.channels}, {args.batches} recalibration batches of 128, "
        f"threads {torch.get_num_threads()}{', channels-last' if args.channels_last else ''}"
    )
    everything: dict[str, list[dict]] = {}
    if args.out and os.path.exists(args.out):
        # The file is written after every network, so a stopped run goes on where it stopped.
        saved = load_scores(args.out)
        if {k: v for k, v in saved["args"].items() if k != "report"} != {
            k: v for k, v in vars(args).items() if k != "report"
        }:
            parser.error(f"--out {args.out} holds a run with other settings: {saved['args']}")
        everything = saved["results"]
        print(f"  going on from {args.out}: {', '.join(f'{len(r)} {k}' for k, r in everything.items())}")
    for kind in args.spaces.split(","):
        specs = sample_specs(kinds[kind], args.n_networks, args.seed)
        results = everything.setdefault(kind, [])
        start = time.perf_counter()
        for index, spec in enumerate(specs):
            if index < len(results):
                continue
            result = run_network(
                spec,
                dataset,
                epochs=args.epochs,
                checkpoints=checkpoints,
                batches=args.batches,
                seed=args.seed * 1_000_003 + index,
                channels_last=args.channels_last,
            )
            results.append(result)
            scored = " ".join(
                f"{epoch}ep {result['before'][epoch]:.3f}/{result['after'][epoch]:.3f}" for epoch in sorted(checkpoints)
            )
            print(
                f"  {kind} {index + 1:>2}/{len(specs)} first epoch {result['epoch_seconds'][0]:5.1f} s, "
                f"before/after: {scored}  {result['spec']}",
                flush=True,
            )
            if args.out:
                with open(args.out, "w") as file:
                    json.dump({"args": vars(args), "results": everything}, file, indent=1)
        print(f"  {kind}: {time.perf_counter() - start:.0f} s")
    for kind in args.spaces.split(","):
        report(kind, everything[kind], args.epochs)


if __name__ == "__main__":
    main()
