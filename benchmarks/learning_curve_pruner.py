"""Epochs saved by the learning-curve pruner on a mnist5k search, and what it costs in best accuracy.

Runs one single-objective search (validation accuracy) of ``--trials`` trials twice with the same
seeds: without pruning (the yardstick) and with :class:`optuna_nas.pruners.LearningCurvePruner`.
Both use the same sampler and seed, the same small ``ChainSpace``, ``--epochs`` epochs per trial,
and weights and batch order from ``(seed, trial.number)``; with Optuna's random sampler the two runs
draw the same architectures and train them identically up to a prune, so the difference is the
pruner's alone. Prints, for each run, the training epochs run (the length of every trial's
``val_accuracy_curve``), the time, and the best validation accuracy found; then the share of epochs
saved and the change in best accuracy (points), and which pruned trials would have beaten the
pruned run's best had they trained on.

Size: torch runs on ``--threads`` threads (1); a chain of the default space takes 1 to 3 s per
epoch of mnist5k on one CPU thread, so the two runs of 20 trials x 10 epochs take about 10 minutes.

    python benchmarks/learning_curve_pruner.py [--seed 0] [--trials 20] [--epochs 10] [--sampler random]
        [--confidence 1.0] [--min-complete-trials 5] [--min-epochs 2]
"""

from __future__ import annotations

import argparse
import time

import optuna
import torch

from optuna_nas import data
from optuna_nas import objectives
from optuna_nas import spaces
from optuna_nas.pruners import LearningCurvePruner
from optuna_nas.samplers import create_sampler


def run(args: argparse.Namespace, dataset, pruner: optuna.pruners.BasePruner) -> tuple[optuna.Study, float]:
    """One search; the study and its wall time in seconds."""
    space = spaces.ChainSpace(
        max_layers=args.max_layers,
        filters=(8, 16, 32),
        kernel_sizes=(3, 5),
        fc_units=(32, 64),
        max_fc_layers=1,
        input_size=min(dataset.input_shape[1:]),
    )
    objective = objectives.ImageClassification(
        space, dataset, epochs=args.epochs, objectives=("accuracy",), seed=args.seed
    )
    study = optuna.create_study(
        direction="maximize", sampler=create_sampler(args.sampler, seed=args.seed), pruner=pruner
    )
    start = time.perf_counter()
    study.optimize(objective, n_trials=args.trials)
    return study, time.perf_counter() - start


def epochs_run(study: optuna.Study) -> int:
    return sum(len(trial.user_attrs.get("val_accuracy_curve", [])) for trial in study.trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0, help="sampler and training seed, the same for both runs")
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--sampler", default="random", help="a name for optuna_nas.samplers.create_sampler")
    parser.add_argument("--max-layers", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    defaults = LearningCurvePruner()
    parser.add_argument("--confidence", type=float, default=defaults.confidence)
    parser.add_argument("--min-complete-trials", type=int, default=defaults.min_complete_trials)
    parser.add_argument("--min-epochs", type=int, default=defaults.min_epochs)
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    dataset = data.load("mnist5k")
    pruner = LearningCurvePruner(
        confidence=args.confidence, min_complete_trials=args.min_complete_trials, min_epochs=args.min_epochs
    )
    print(
        f"mnist5k, {args.trials} trials x {args.epochs} epochs, sampler {args.sampler} seed {args.seed}, "
        f"LearningCurvePruner(confidence={pruner.confidence:g}, min_complete_trials={pruner.min_complete_trials}, "
        f"min_epochs={pruner.min_epochs}), threads {torch.get_num_threads()}"
    )
    studies = {}
    for name, arm in (("unpruned", optuna.pruners.NopPruner()), ("pruned", pruner)):
        study, seconds = run(args, dataset, arm)
        studies[name] = study
        pruned = len(study.get_trials(states=(optuna.trial.TrialState.PRUNED,)))
        print(
            f"  {name:<9} epochs {epochs_run(study):>4}  {seconds:6.0f} s  best val accuracy "
            f"{study.best_value:.4f} (trial {study.best_trial.number})  pruned trials {pruned}",
            flush=True,
        )

    base, cut = studies["unpruned"], studies["pruned"]
    saved = 1 - epochs_run(cut) / epochs_run(base)
    print(f"  epochs saved: {saved:.1%}; best accuracy change: {100 * (cut.best_value - base.best_value):+.2f} points")
    print("  trial  unpruned final  pruned run")
    for full, short in zip(base.trials, cut.trials, strict=True):
        curve = short.user_attrs.get("val_accuracy_curve", [])
        fate = "complete" if short.state == optuna.trial.TrialState.COMPLETE else f"pruned after {len(curve)}"
        lost = (
            "  (would have beaten the pruned run's best)"
            if full.value > cut.best_value and short.state == optuna.trial.TrialState.PRUNED
            else ""
        )
        print(f"  {full.number:>5}  {full.value:14.4f}  {fate}{lost}")


if __name__ == "__main__":
    main()
