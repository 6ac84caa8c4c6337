"""``optuna-nas pareto``, ``optuna-nas export``, ``optuna-nas qtable``: read a finished search."""

from __future__ import annotations

import argparse
import json
import math
import os
from typing import Any

import optuna

from optuna_nas.cli._common import CommandError
from optuna_nas.cli._common import absolute_folder
from optuna_nas.cli._common import given_locations
from optuna_nas.cli._common import load_study
from optuna_nas.cli._common import read_config
from optuna_nas.cli._common import safe_file_name
from optuna_nas.cli._common import saved_locations
from optuna_nas.cli._common import study_locations


def pareto(args: argparse.Namespace) -> int:
    """Print the Pareto front and its hypervolume; write the plots."""
    from optuna_nas import analysis

    if args.out_dir is not None:
        absolute_folder(args.out_dir, "--out-dir")
    study = load_study(args.storage, args.study_name)
    places = saved_locations(study, read=("mlflow_uri", "artifact_dir"), overridable=False)
    front = analysis.pareto_front(study)
    if not front:
        raise CommandError(f"study {args.study_name!r} has no complete trial yet")
    names = analysis.metric_names(study)
    if args.reference is not None:
        try:
            reference = [float(v) for v in args.reference.split(",")]
        except ValueError:
            raise CommandError(f"--reference must be comma-separated numbers, got {args.reference!r}") from None
        if not all(math.isfinite(value) for value in reference):
            raise CommandError(f"--reference must be finite numbers, got {args.reference!r}")
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
        out_dir = args.out_dir or f"pareto-{safe_file_name(study.study_name)}"
        y = "accuracy" if "accuracy" in names else names[0]
        for x in [n for n in names if n != y][:2]:
            try:
                paths = analysis.plot_pareto(study, x=x, y=y, out_dir=out_dir)
            except OSError as error:
                raise CommandError(f"--out-dir {out_dir!r} cannot be written: {error.strerror or error}") from None
            print(f"plot {y} vs {x}: {paths['png']}, {paths['html']}")
    if places.artifact_dir is not None and os.path.isdir(places.artifact_dir):
        print(f"trained weights and network pictures: {places.artifact_dir} (optuna-nas export --trial N)")
    if places.recorded and places.mlflow_uri is not None:
        print(f"MLflow runs: {places.mlflow_uri}, experiment {study.study_name!r}")
    return 0


def export(args: argparse.Namespace) -> int:
    """Write a trial's spec and trained network in ``--format``, checked against the network.

    The weights come from the study's artifact folder and retraining reads the study's data root,
    as its search saved them, unless ``--artifact-dir`` or ``--data-root`` is given. Prints each
    written file with its size and how far its outputs are from the network's.
    """
    from optuna_nas import analysis

    given = given_locations(args, create_artifact_dir=False)
    folder = given.get("artifact_dir")
    if folder is not None and not os.path.isdir(folder) and args.retrain_epochs == 0:
        raise CommandError(f"--artifact-dir {args.artifact_dir!r}: no such folder.")
    study = load_study(args.storage, args.study_name)
    places = study_locations(study, given, read=("artifact_dir",) + ("data_root",) * (args.retrain_epochs > 0))
    store = None
    if places.artifact_dir is not None and os.path.isdir(places.artifact_dir):
        store = optuna.artifacts.FileSystemArtifactStore(places.artifact_dir)
    try:
        dataset = None
        if args.retrain_epochs > 0 and places.data_root is not None:
            dataset = _dataset(analysis.find_trial(study, args.trial), places.data_root)
        result = analysis.export(
            study,
            args.trial,
            args.out,
            format=args.format,
            retrain_epochs=args.retrain_epochs,
            artifact_store=store,
            dataset=dataset,
        )
    except ImportError as error:
        raise CommandError(str(error).replace(f"format={args.format!r}", f"--format {args.format}")) from None
    except ValueError as error:
        message = str(error).replace("trial_number:", "--trial:").replace("retrain_epochs:", "--retrain-epochs:")
        raise CommandError(
            message.replace("artifact_store:", f"the artifact folder {places.artifact_dir!r}:")
        ) from None
    difference = result["max_abs_difference"]
    for name, size in result["files"].items():
        print(f"{os.path.join(args.out, name)}: {size:,} bytes, outputs within {difference:.1e} of the network's")
    for kind, what in (("spec", "the architecture"), ("report", "what was written, and how it was checked")):
        path = result["paths"][kind]
        print(f"{path}: {os.path.getsize(path):,} bytes, {what}")
    batch = "any size" if result["dynamic_batch"] else f"exactly {result['batch_size']} inputs"
    print(
        f"weights: {result['weights']}; {result['params']:,} params, {result['flops']:,} FLOPs; "
        f"takes batches of {batch}"
    )
    return 0


def _dataset(trial: optuna.trial.FrozenTrial, data_root: str) -> Any:
    """The trial's dataset read from ``data_root``, or ``None`` to let the export find it (or say why not)."""
    from optuna_nas import data

    name = trial.user_attrs.get("dataset")
    if name not in data.available_datasets():
        return None
    try:
        return data.load(name, root=data_root)
    except OSError as error:
        raise CommandError(f"{str(error).splitlines()[0]} (--data-root names another folder)") from None


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
