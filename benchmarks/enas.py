"""ENAS on mnist5k: how many children shared weights evaluate per minute against training each from
scratch for one epoch, and how the derived architecture does when retrained from scratch against
random architectures of the same space with the same training.

One run, on the CPU with one thread (``--threads``):

1. from scratch: ``--scratch-children`` random children, each trained for one epoch by
   ``ImageClassification`` (its defaults: Adam 1e-3, batches of 128) and scored on the validation
   split; children per minute;
2. shared weights: an ENAS search, ``SharedWeights`` (single objective: validation accuracy, ENAS's
   reward) with ``ENASSampler``, ``--trials`` children; children per minute, every cost included
   (controller, standalone params/FLOPs count, storage), and the controller's share of the time;
3. ``derive(n=--derive-n)`` picks an architecture; it and ``--random`` random architectures of the
   space are retrained from scratch by ``ImageClassification`` for ``--retrain-epochs`` epochs with
   the same settings and seed; each one's validation and test accuracy, and its score under the
   shared weights.

    python benchmarks/enas.py [--space cell|chain] [--trials 300] [--retrain-epochs 2] [--out enas.json]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import optuna
import torch
from _timing import TimedSampler

from optuna_nas import data
from optuna_nas import objectives
from optuna_nas import samplers
from optuna_nas import spaces

SPACES = {
    # ENAS's micro search, small enough for one CPU thread: cells of up to 3 blocks, 8 channels.
    "cell": lambda: spaces.CellSpace(
        max_blocks=3,
        channels=8,
        ops=("sep_conv_3x3", "sep_conv_5x5", "identity", "avg_pool_3x3", "max_pool_3x3"),
    ),
    # ENAS's macro search: chains with skip connections.
    "chain": lambda: spaces.ChainSpace(
        max_layers=6,
        input_size=28,
        kernel_sizes=(3, 5),
        filters=(16, 32),
        strides=(1, 2),
        fc_units=(64,),
        max_fc_layers=1,
        skip_connections=True,
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", choices=sorted(SPACES), default="cell")
    parser.add_argument("--dataset", default="mnist5k")
    parser.add_argument("--trials", type=int, default=300, help="children of the ENAS search")
    parser.add_argument("--batches-per-trial", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=64, help="of the shared weights' training")
    parser.add_argument("--eval-batches", type=int, default=2)
    parser.add_argument("--scratch-children", type=int, default=3)
    parser.add_argument("--derive-n", type=int, default=100)
    parser.add_argument("--random", type=int, default=5)
    parser.add_argument("--retrain-epochs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", help="write the figures as JSON here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dataset = data.load(args.dataset)
    space = SPACES[args.space]()
    began = time.perf_counter()

    # 1. From scratch, one epoch each.
    scratch = objectives.ImageClassification(space, dataset, epochs=1, seed=args.seed, objectives=("accuracy",))
    scratch_study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=args.seed))
    start = time.perf_counter()
    scratch_study.optimize(scratch, n_trials=args.scratch_children)
    scratch_minutes = (time.perf_counter() - start) / 60

    # 2. Shared weights: the ENAS search.
    shared = objectives.SharedWeights(
        space,
        dataset,
        batches_per_trial=args.batches_per_trial,
        batch_size=args.batch_size,
        eval_batches=args.eval_batches,
        objectives=("accuracy",),
        seed=args.seed,
    )
    controller = TimedSampler(samplers.ENASSampler(seed=args.seed))
    study = optuna.create_study(direction="maximize", sampler=controller)
    start = time.perf_counter()
    study.optimize(shared, n_trials=args.trials)
    shared_minutes = (time.perf_counter() - start) / 60
    controller_seconds = controller.seconds
    values = [trial.value for trial in study.trials if trial.value is not None]
    tenth = max(1, len(values) // 10)

    # 3. Derive, then retrain it and random architectures from scratch, the same way.
    start = time.perf_counter()
    derived = objectives.derive(study, objective=shared, n=args.derive_n, seed=args.seed)
    derive_seconds = time.perf_counter() - start
    retrain = objectives.ImageClassification(space, dataset, epochs=args.retrain_epochs, seed=args.seed)
    retrain_study = optuna.create_study(
        directions=retrain.directions, sampler=optuna.samplers.RandomSampler(seed=args.seed + 1)
    )
    retrain_study.enqueue_trial(derived.params)
    retrain_study.optimize(retrain, n_trials=1 + args.random)
    rows = []
    for trial in retrain_study.trials:
        spec = spaces.spec_from_dict(trial.user_attrs["spec"])
        rows.append(
            {
                "which": "derived" if trial.number == 0 else "random",
                "architecture": trial.user_attrs["architecture"],
                "shared_score": shared.score(spec),
                "val_accuracy": trial.values[0],
                "test_accuracy": trial.user_attrs["test_accuracy"],
                "params": trial.user_attrs["params"],
                "flops": trial.user_attrs["flops"],
            }
        )
    random_rows = [row for row in rows if row["which"] == "random"]

    figures = {
        "space": args.space,
        "settings": vars(args),
        "scratch_children_per_minute": args.scratch_children / scratch_minutes,
        "shared_children_per_minute": args.trials / shared_minutes,
        "shared_search_minutes": shared_minutes,
        "controller_share": controller_seconds / (shared_minutes * 60),
        "speed_up": (args.trials / shared_minutes) / (args.scratch_children / scratch_minutes),
        "scratch_one_epoch_val_accuracy": [trial.value for trial in scratch_study.trials],
        "shared_score_first_tenth": statistics.mean(values[:tenth]),
        "shared_score_last_tenth": statistics.mean(values[-tenth:]),
        "shared_batches": shared.batches_trained,
        "derive_candidates": len(derived.scores),
        "derive_seconds": derive_seconds,
        "derived_shared_score": derived.accuracy,
        "retrained": rows,
        "random_val_mean": statistics.mean(row["val_accuracy"] for row in random_rows),
        "random_val_std": statistics.stdev(row["val_accuracy"] for row in random_rows) if len(random_rows) > 1 else 0.0,
        "random_test_mean": statistics.mean(row["test_accuracy"] for row in random_rows),
        "minutes": (time.perf_counter() - began) / 60,
    }
    print(f"space {args.space}, {args.dataset}, {args.threads} thread(s), {figures['minutes']:.1f} min in all")
    print(
        f"children per minute: shared weights {figures['shared_children_per_minute']:.1f} "
        f"({args.batches_per_trial} batches of {args.batch_size} + {args.eval_batches} validation batches each), "
        f"from scratch {figures['scratch_children_per_minute']:.2f} (one epoch each): "
        f"{figures['speed_up']:.0f}x; the search took {shared_minutes:.1f} min, "
        f"{100 * figures['controller_share']:.0f} % of it in the controller"
    )
    print(
        f"shared-weight score of the search's children: first tenth {figures['shared_score_first_tenth']:.3f}, "
        f"last tenth {figures['shared_score_last_tenth']:.3f} ({shared.batches_trained} shared batches)"
    )
    print(
        f"derive: {len(derived.scores)} distinct of {args.derive_n} sampled, best shared score "
        f"{derived.accuracy:.3f}, {derive_seconds:.1f} s"
    )
    print(f"retrained from scratch, {args.retrain_epochs} epochs (ImageClassification defaults):")
    print(f"{'':8} {'val':>6} {'test':>6} {'shared':>6} {'params':>8} {'MFLOPs':>7}  architecture")
    for row in rows:
        print(
            f"{row['which']:8} {row['val_accuracy']:6.3f} {row['test_accuracy']:6.3f} {row['shared_score']:6.3f} "
            f"{row['params']:8d} {row['flops'] / 1e6:7.2f}  {row['architecture']}"
        )
    print(
        f"random mean: val {figures['random_val_mean']:.3f} +- {figures['random_val_std']:.3f}, "
        f"test {figures['random_test_mean']:.3f}"
    )
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
