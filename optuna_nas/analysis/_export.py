"""Export a trial's architecture: its spec, and the trained network as TorchScript (and ONNX)."""

from __future__ import annotations

import json
import os
import tempfile
import warnings
from typing import Any

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from optuna_nas._validation import check_int


def find_trial(study: optuna.Study, trial_number: int) -> FrozenTrial:
    """The trial numbered ``trial_number``.

    Raises:
        ValueError: No such trial in the study.
    """
    trials = study.get_trials(deepcopy=False)
    for trial in trials:
        if trial.number == trial_number:
            return trial
    raise ValueError(
        f"trial_number: {trial_number!r} is not in study {study.study_name!r} (it has trials 0..{len(trials) - 1})."
    )


def trial_spec(trial: FrozenTrial) -> Any:
    """The architecture spec a trial recorded (``spec`` or, for NAS-Bench-201 tables, ``arch``).

    Raises:
        ValueError: The trial recorded no architecture.
    """
    from optuna_nas.spaces import NASBench201Spec
    from optuna_nas.spaces import spec_from_dict

    if "spec" in trial.user_attrs:
        return spec_from_dict(trial.user_attrs["spec"])
    if "arch" in trial.user_attrs:
        return NASBench201Spec.from_arch_str(trial.user_attrs["arch"])
    raise ValueError(f"trial_number: trial {trial.number} recorded no architecture (no 'spec' user attr).")


def _load_weights(study: optuna.Study, trial: FrozenTrial, artifact_store: Any, model: Any) -> bool:
    import numpy as np
    import torch

    if artifact_store is None:
        return False
    metas = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    meta = next((m for m in metas if m.filename == "weights.npz"), None)
    if meta is None:
        return False
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "weights.npz")
        try:
            optuna.artifacts.download_artifact(
                artifact_store=artifact_store, file_path=path, artifact_id=meta.artifact_id
            )
        except ArtifactNotFound:
            raise ValueError(
                f"artifact_store: trial {trial.number}'s weights (artifact {meta.artifact_id}) are not in it."
            ) from None
        with np.load(path, allow_pickle=False) as arrays:
            state = {name: torch.from_numpy(arrays[name]) for name in arrays.files}
    model.load_state_dict(state)
    return True


def export(
    study: optuna.Study,
    trial_number: int,
    out_dir: str,
    *,
    retrain_epochs: int = 0,
    artifact_store: Any = None,
    dataset: Any = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Write trial ``trial_number``'s architecture to ``out_dir``.

    Writes ``spec.json``, ``model.pt`` (TorchScript; ``torch.jit.load`` reads it) and, where the
    ``onnx`` package is installed, ``model.onnx``. The weights are the trial's own trained weights
    from ``artifact_store`` (see ``ImageClassification(artifact_store=...)``), or, with
    ``retrain_epochs > 0``, new ones trained from scratch for that many epochs on the whole training
    data (train and validation splits) of the trial's dataset.

    Returns:
        Paths written, the weights' origin, and ``max_abs_difference`` between the outputs of the
        network and of the reloaded TorchScript file on a batch of validation images.

    Raises:
        ValueError: The trial does not exist or recorded no architecture, ``retrain_epochs`` is
            negative, or there are no saved weights (or ``artifact_store`` lacks them) and
            ``retrain_epochs`` is 0.
    """
    import torch

    from optuna_nas.models import build_model

    check_int("retrain_epochs", retrain_epochs, minimum=0)
    trial = find_trial(study, trial_number)
    spec = trial_spec(trial)
    if "input_shape" not in trial.user_attrs:
        raise ValueError(f"trial_number: trial {trial.number} recorded no input_shape to build its network for.")
    input_shape, num_classes = tuple(trial.user_attrs["input_shape"]), trial.user_attrs["num_classes"]
    torch.manual_seed(seed)
    model = build_model(spec, input_shape=input_shape, num_classes=num_classes)
    if retrain_epochs > 0:
        origin = f"retrained for {retrain_epochs} epochs on the full training split"
        batch = _retrain(model, trial, dataset, retrain_epochs, seed)
    elif _load_weights(study, trial, artifact_store, model):
        origin = "the trial's trained weights"
        batch = torch.randn(8, *input_shape)
    else:
        raise ValueError(
            f"retrain_epochs: trial {trial_number} has no saved weights (no artifact store, or it was not "
            f"complete); pass retrain_epochs > 0 to train the architecture from scratch, got {retrain_epochs}."
        )
    model = model.cpu().eval()
    os.makedirs(out_dir, exist_ok=True)
    paths = {"spec": os.path.join(out_dir, "spec.json"), "torchscript": os.path.join(out_dir, "model.pt")}
    with open(paths["spec"], "w") as f:
        json.dump(
            {
                "trial": trial.number,
                "study": study.study_name,
                "input_shape": list(input_shape),
                "num_classes": num_classes,
                "spec": spec.to_dict(),
                "spec_hash": spec.spec_hash,
            },
            f,
            indent=2,
        )
    with torch.no_grad(), warnings.catch_warnings():
        # TorchScript is deprecated in recent torch releases but is still what deploys everywhere.
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.trace(model, batch[:1])  # type: ignore[no-untyped-call]  # torch.jit.trace is unannotated
        scripted.save(paths["torchscript"])
        reloaded = torch.jit.load(paths["torchscript"])  # type: ignore[no-untyped-call]  # torch.jit.load is unannotated
        difference = float((reloaded(batch) - model(batch)).abs().max())
    result: dict[str, Any] = {"paths": paths, "weights": origin, "max_abs_difference": difference}
    try:
        import onnx  # noqa: F401
    except ImportError:
        result["onnx"] = "not written: the onnx package is not installed"
    else:
        onnx_path = os.path.join(out_dir, "model.onnx")
        try:
            torch.onnx.export(
                model, (batch[:1],), onnx_path, input_names=["images"], output_names=["logits"], verbose=False
            )
        except Exception as error:  # noqa: BLE001 - the TorchScript export above stands on its own
            result["onnx"] = f"not written: {str(error).splitlines()[0] if str(error) else type(error).__name__}"
        else:
            paths["onnx"] = onnx_path
            result["onnx"] = "written"
    return result


def _retrain(model: Any, trial: FrozenTrial, dataset: Any, epochs: int, seed: int) -> Any:
    import torch

    from optuna_nas.data import load
    from optuna_nas.objectives._training import TrainingSettings
    from optuna_nas.objectives._training import train

    if dataset is None:
        name = trial.user_attrs.get("dataset")
        if name is None or name.startswith(("cifar100", "imagenet16")) or "input_shape" not in trial.user_attrs:
            raise ValueError(f"dataset: trial {trial.number} names no dataset this machine can load; pass one.")
        dataset = load(name)
    images = torch.cat([dataset.train_x, dataset.val_x])
    labels = torch.cat([dataset.train_y, dataset.val_y])
    train(model, images, labels, dataset.test_x, dataset.test_y, TrainingSettings(epochs=epochs), seed=seed)
    return dataset.val_x[:16]
