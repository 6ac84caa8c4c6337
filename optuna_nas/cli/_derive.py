"""``optuna-nas derive``: ENAS's last step, the architecture to retrain from an ENAS study."""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from optuna_nas.cli._build import ENAS
from optuna_nas.cli._build import make_objective
from optuna_nas.cli._build import make_sampler
from optuna_nas.cli._build import saved_sampler_options
from optuna_nas.cli._common import CommandError
from optuna_nas.cli._common import given_locations
from optuna_nas.cli._common import load_study
from optuna_nas.cli._common import open_storage
from optuna_nas.cli._common import read_config
from optuna_nas.cli._common import study_locations

#: The study system attr in which :class:`~optuna_nas.objectives.SharedWeights` names the process that
#: trains the study's shared weights (empty once released).


def add_derive_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of ``derive`` but the study's."""
    from optuna_nas.cli._search import add_take_over_argument

    parser.add_argument("--n", type=int, default=100, help="architectures to sample from the trained controller")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sampling")
    parser.add_argument("--out", default=None, help="JSON file for the derived spec (default: write none)")
    parser.add_argument(
        "--artifact-dir",
        default=None,
        help="folder of the saved shared weights (default: the study's)",
    )
    parser.add_argument("--data-root", default=None, help="folder of the torchvision datasets (default: the study's)")
    add_take_over_argument(parser)


def derive(args: argparse.Namespace) -> int:
    """Sample ``--n`` architectures from an ENAS study's controller, score each with the study's
    last saved shared weights, print the best with how to retrain it, and write its spec (``--out``).
    """
    from optuna_nas import objectives
    from optuna_nas.cli._search import shared_weights_message

    if args.n < 1:
        raise CommandError(f"--n must be >= 1, got {args.n}")
    if args.seed < 0:
        raise CommandError(f"--seed must be >= 0, got {args.seed}")
    given = given_locations(args, create_artifact_dir=False)
    storage = open_storage(args.storage, must_exist=True)
    study = load_study(args.storage, args.study_name, storage=storage)
    config = read_config(study)
    if config.get("sampler") != ENAS:
        raise CommandError(
            f"--study-name {args.study_name!r} was searched with --sampler {config.get('sampler')}; derive needs "
            "a study searched with --sampler enas"
        )
    from optuna_nas.objectives import OWNER_KEY

    owner = storage.get_study_system_attrs(storage.get_study_id_from_name(args.study_name)).get(OWNER_KEY)
    if owner and not args.take_over:
        raise CommandError(
            f"study {args.study_name!r} is still owned by process {owner.get('pid')} on host {owner.get('host')!r} "
            f"(since {owner.get('since')}), which trains its shared weights; derive when it has ended, or pass "
            "--take-over to derive from the weights it saved last"
        )
    places = study_locations(study, given, read=("data_root", "artifact_dir"))
    if places.artifact_dir is None or not os.path.isdir(places.artifact_dir):
        raise CommandError(
            f"the artifact folder {places.artifact_dir!r} of the saved shared weights is not there; pass --artifact-dir"
        )
    config.update(data_root=places.data_root, artifact_dir=places.artifact_dir)
    try:
        objective, space = make_objective(config, take_over=args.take_over)
        reward, _ = saved_sampler_options(config)
        sampler = make_sampler(
            ENAS, config["seed"], space, reward=reward, directions=[d.name.lower() for d in study.directions]
        )
        derived = objectives.derive(study, objective=objective, n=args.n, sampler=sampler, seed=args.seed)
    except (ValueError, OSError) as error:
        raise CommandError(shared_weights_message(error)) from None
    _print(args, derived, objective, space)
    if args.out:
        with open(args.out, "w") as file:
            json.dump(derived.spec.to_dict(), file, indent=2)
            file.write("\n")
        print(f"spec written to {args.out} (optuna_nas.spaces.spec_from_dict reads it)")
    return 0


def _print(args: argparse.Namespace, derived: Any, objective: Any, space: Any) -> None:
    from optuna_nas.metrics import count_cost
    from optuna_nas.models import build_model

    dataset = objective.dataset
    model = build_model(derived.spec, input_shape=dataset.input_shape, num_classes=dataset.num_classes)
    cost = count_cost(model, input_shape=dataset.input_shape)
    print(
        f"study {args.study_name!r}: shared weights of {objective.trials_trained} trials "
        f"({objective.batches_trained} batches); best of {len(derived.scores)} distinct architectures "
        f"in {args.n} sampled"
    )
    print(f"  architecture: {derived.spec.summary()}")
    print(f"  spec {derived.spec.spec_hash}")
    print(f"  accuracy under the shared weights: {derived.accuracy:.4f}")
    print(f"  params: {cost.params:,}  flops: {cost.flops:,}")
    print(f"  decisions: {json.dumps(derived.params)}")
    print(f"  space: {json.dumps(space.to_dict())}")
    print(
        "to retrain it from scratch: study.enqueue_trial(<decisions above>) in a study with "
        "optuna_nas.objectives.ImageClassification on that space, or optuna_nas.models.build_model(spec, ...) "
        "with the spec (--out, read by optuna_nas.spaces.spec_from_dict)"
    )
