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
choice, its score with running averages and its recalibrated validation loss (600 images tie many
well-trained networks on accuracy; the loss orders them finely); and the gain (after - before) with
a 95 % interval from resampling the networks. The short scores are always accuracies, the score a
search ranks by.

Cells whose output is cut off from the input (every path through ``none``) compute a constant and
score chance whatever they learn; they are skipped. Networks are distinct by canonical spec hash.

Size: torch runs on one thread. At the benchmark's own width (16, 32 and 64 channels) a
NAS-Bench-201 network takes 15 to 60 s per epoch of mnist5k on one CPU thread, 30 networks for 10
epochs about 3 hours; so the cells are built with ``--channels`` 4 (4, 8 and 16 channels; the
depth, 5 cells per stage, is kept), 5 to 15 s per epoch. Chains keep the command's default widths
(under 2 s per epoch). At full width the 10-epoch accuracies also crowd into 0.97-0.98, which
leaves little to rank.

    python benchmarks/bn_recalibration.py [--seed 0] [--n-networks 30] [--epochs 10] [--channels 4] [--out scores.json]
    python benchmarks/bn_recalibration.py --report scores.json    # the figures again, no training
    # one shard per core, then the figures of both:
    python benchmarks/bn_recalibration.py --shard 0/2 --out a.json &
    python benchmarks/bn_recalibration.py --shard 1/2 --out b.json
    python benchmarks/bn_recalibration.py --report a.json b.json
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

#: What is scored after the checkpoint epochs: accuracy and loss, before and after recalibration.
SCORES = ("before", "after", "before_loss", "after_loss")


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


def validation_loss(model, dataset, *, batch_size: int = 1024) -> float:
    """Mean cross-entropy on the validation split in evaluation mode: a finer score than accuracy."""
    model.eval()
    total = 0.0
    with torch.inference_mode():
        for start in range(0, len(dataset.val_y), batch_size):
            logits = model(dataset.val_x[start : start + batch_size])
            total += torch.nn.functional.cross_entropy(
                logits.float(), dataset.val_y[start : start + batch_size], reduction="sum"
            ).item()
    return total / len(dataset.val_y)


def scores(model, dataset, *, batches: int, batch_size: int, seed: int) -> dict[str, float]:
    """Validation accuracy and loss with the running averages (before), and after recalibration (on a copy)."""
    recalibrated = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(seed)
    _training.recalibrate_batchnorm(
        recalibrated, dataset.train_x, batches=batches, batch_size=batch_size, generator=generator
    )
    return {
        "before": _training.evaluate(model, dataset.val_x, dataset.val_y),
        "after": _training.evaluate(recalibrated, dataset.val_x, dataset.val_y),
        "before_loss": validation_loss(model, dataset),
        "after_loss": validation_loss(recalibrated, dataset),
    }


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
    result = {
        "spec": spec.summary(),
        **{way: {} for way in SCORES},
        "epoch_seconds": [],
    }
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        _training.train_epoch(
            model, optimizer, dataset.train_x, dataset.train_y, batch_size=settings.batch_size, generator=generator
        )
        result["epoch_seconds"].append(time.perf_counter() - start)
        if epoch in checkpoints:
            scored = scores(model, dataset, batches=batches, batch_size=settings.batch_size, seed=seed)
            for way, value in scored.items():
                result[way][epoch] = value
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
    references = {"after": "recalibrated", "before": "running averages"}
    if all("after_loss" in r for r in results):
        # Accuracy on 600 images ties many well-trained networks; the loss orders them finely.
        references["after_loss"] = "recalibrated, minus loss"
    for reference, label in references.items():
        target = column(reference, epochs) * (-1 if reference.endswith("_loss") else 1)
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
        for position, result in enumerate(results):
            result.setdefault("index", position)  # files written before shards
            for way in SCORES:
                if way in result:
                    result[way] = {int(epoch): value for epoch, value in result[way].items()}
    return saved


def merge_scores(paths: list[str]) -> tuple[dict[str, list[dict]], int]:
    """The networks of several files (the shards of one run), in index order, and the epochs."""
    merged: dict[str, dict[int, dict]] = {}
    settings = None
    for path in paths:
        saved = load_scores(path)
        these = {k: v for k, v in saved["args"].items() if k not in ("report", "out", "shard", "spaces")}
        if settings is not None and these != settings:
            raise SystemExit(f"{path} holds a run with other settings: {these} against {settings}")
        settings = these
        for kind, results in saved["results"].items():
            for result in results:
                merged.setdefault(kind, {})[result["index"]] = result
    assert settings is not None
    return {kind: [byindex[i] for i in sorted(byindex)] for kind, byindex in merged.items()}, settings["epochs"]


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
    parser.add_argument(
        "--shard",
        default="0/1",
        help="I/N: train only the networks whose index is I modulo N (run N at once, one per core, then --report all)",
    )
    parser.add_argument(
        "--report", nargs="+", default=None, help="print the figures of files written by --out (shards), train nothing"
    )
    args = parser.parse_args()
    if args.epochs < 3:
        parser.error(
            f"--epochs must be at least 3 (scores after 1 and 2 epochs are compared with the last), got {args.epochs}"
        )
    if args.report:
        merged, epochs = merge_scores(args.report)
        for kind, results in merged.items():
            report(kind, results, epochs)
        return
    try:
        shard, shards = (int(part) for part in args.shard.split("/"))
        if not 0 <= shard < shards:
            raise ValueError
    except ValueError:
        parser.error(f"--shard must be I/N with 0 <= I < N, got {args.shard!r}")

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
        done = {result["index"] for result in results}
        for index, spec in enumerate(specs):
            if index in done or index % shards != shard:
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
            results.append({"index": index, **result})
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
