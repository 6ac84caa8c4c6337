"""``optuna-nas pareto``, ``optuna-nas export``, ``optuna-nas qtable``: read a finished search."""

from __future__ import annotations

import argparse
import json
import os

import optuna

from optuna_nas.cli._common import CommandError
from optuna_nas.cli._common import load_study
from optuna_nas.cli._common import read_config


def pareto(args: argparse.Namespace) -> int:
    """Print the Pareto front and its hypervolume; write the plots."""
    from optuna_nas import analysis

    study = load_study(args.storage, args.study_name)
    front = analysis.pareto_front(study)
    if not front:
        raise CommandError(f"study {args.study_name!r} has no complete trial yet")
    names = analysis.metric_names(study)
    if args.reference:
        try:
            reference = [float(v) for v in args.reference.split(",")]
        except ValueError:
            raise CommandError(f"--reference must be comma-separated numbers, got {args.reference!r}") from None
        if len(reference) != len(names):
            raise CommandError(f"--reference needs {len(names)} values ({', '.join(names)}), got {args.reference!r}")
    else:
        reference = analysis.default_reference(study)
    print(f"Pareto front of study {study.study_name!r} ({len(front)} of {len(study.trials)} trials)")
    header = f"{'trial':>6}  " + "  ".join(f"{n:>12}" for n in names) + "  spec hash"
    print(header)
    for trial in front:
        cells = "  ".join(f"{v:>12.6g}" for v in trial.values)
        print(f"{trial.number:>6}  {cells}  {trial.user_attrs.get('spec_hash', '')}")
    stated = ", ".join(f"{n}={v:.6g}" for n, v in zip(names, reference, strict=False))
    print(f"hypervolume: {analysis.hypervolume(study, reference):.6g} (reference point: {stated})")
    if len(names) > 1:
        out_dir = args.out_dir or f"pareto-{study.study_name}"
        y = "accuracy" if "accuracy" in names else names[0]
        for x in [n for n in names if n != y][:2]:
            paths = analysis.plot_pareto(study, x=x, y=y, out_dir=out_dir)
            print(f"plot {y} vs {x}: {paths['png']}, {paths['html']}")
    return 0


def export(args: argparse.Namespace) -> int:
    """Write a trial's spec and trained network."""
    from optuna_nas import analysis

    study = load_study(args.storage, args.study_name)
    store = None
    artifact_dir = args.artifact_dir
    if artifact_dir is None:
        try:
            artifact_dir = read_config(study).get("artifact_dir")
        except CommandError:
            artifact_dir = None
    if artifact_dir and os.path.isdir(artifact_dir):
        store = optuna.artifacts.FileSystemArtifactStore(artifact_dir)
    try:
        result = analysis.export(study, args.trial, args.out, retrain_epochs=args.retrain_epochs, artifact_store=store)
    except ValueError as error:
        raise CommandError(
            str(error).replace("trial_number:", "--trial:").replace("retrain_epochs:", "--retrain-epochs:")
        ) from None
    for kind, path in result["paths"].items():
        print(f"{kind}: {path}")
    print(f"weights: {result['weights']}; TorchScript output matches the network to {result['max_abs_difference']:.2e}")
    print(f"ONNX: {result['onnx']}")
    return 0


def qtable(args: argparse.Namespace) -> int:
    """Rebuild a MetaQNN study's Q-table from storage and print it as JSON."""
    from optuna_nas.cli._build import make_sampler
    from optuna_nas.cli._build import make_space

    study = load_study(args.storage, args.study_name)
    config = read_config(study)
    if config["sampler"] != "metaqnn":
        raise CommandError(f"study {args.study_name!r} was searched with {config['sampler']!r}, not metaqnn")
    space = make_space(config)
    sampler = make_sampler("metaqnn", config["seed"], space)
    table = sampler.q_table(study)  # type: ignore[attr-defined]
    text = json.dumps(table, indent=1)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
        print(f"{len(table)} states written to {args.out}")
    else:
        print(text)
    return 0
