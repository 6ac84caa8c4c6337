"""Export a trial's architecture: its spec, and its trained network as torch.export, ONNX or TorchScript."""

from __future__ import annotations

import importlib
import json
import os
import tempfile
import warnings
from collections.abc import Callable
from typing import Any

import optuna
from optuna.artifacts.exceptions import ArtifactNotFound
from optuna.trial import FrozenTrial

from optuna_nas._validation import check_int
from optuna_nas._validation import check_one_of


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
    """The architecture spec a trial recorded in its ``spec`` user attr (read with
    :func:`optuna_nas.spaces.spec_from_dict`, so any registered spec type).

    Raises:
        ValueError: The trial recorded no architecture.
    """
    from optuna_nas.spaces import spec_from_dict

    if "spec" in trial.user_attrs:
        return spec_from_dict(trial.user_attrs["spec"])
    raise ValueError(
        f"trial_number: trial {trial.number} recorded no architecture: no 'spec' user attr among "
        f"{sorted(trial.user_attrs)} (objectives of this version record one; a study made by an older "
        "version may not have)."
    )


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


#: The file formats :func:`export` writes.
EXPORT_FORMATS = ("pt2", "onnx", "torchscript")

#: What ``format="onnx"`` needs: torch's exporter writes through onnx and onnxscript, and the
#: written file is checked with onnxruntime. They make up the ``onnx`` extra.
_ONNX_PACKAGES = ("onnx", "onnxscript", "onnxruntime")

#: The largest difference between the outputs of the written file and of the network that passes.
_TOLERANCE = 1e-4

#: Inputs in the batch the written file is checked on, drawn from a generator seeded with ``seed``.
_CHECK_BATCH = 8

_MODEL_FILES = {"pt2": "model.pt2", "onnx": "model.onnx", "torchscript": "model.pt"}


def export(
    study: optuna.Study,
    trial_number: int,
    out_dir: str,
    *,
    format: str = "pt2",
    retrain_epochs: int = 0,
    artifact_store: Any = None,
    dataset: Any = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Write trial ``trial_number``'s architecture and trained network to ``out_dir``, and check it.

    Writes ``spec.json`` (the architecture), the network in one ``format``, and ``export.json``
    describing what was written. The formats:

    - ``"pt2"``: ``model.pt2``, a ``torch.export`` program (``torch.export.save``); load it with
      ``torch.export.load(path).module()``.
    - ``"onnx"``: ``model.onnx`` from torch's ONNX exporter (``dynamo=True``), with its weights in
      the side file ``model.onnx.data``. Needs the ``onnx`` extra:
      ``pip install 'optuna-nas[onnx]'``.
    - ``"torchscript"``: ``model.pt``, a traced TorchScript module for runtimes older than
      ``torch.export``. TorchScript is deprecated by torch (``torch.jit.trace`` and
      ``torch.jit.load`` warn that it is) and may leave a later release of torch.

    The batch dimension is dynamic. A network that fixes its batch size (one that branches on it)
    is exported for batches of exactly 8 inputs instead, with a warning, and ``export.json`` says so
    (``dynamic_batch``). Every network of the built-in spaces has a dynamic batch.

    The weights are the trial's own trained weights from ``artifact_store`` (see
    ``ImageClassification(artifact_store=...)``), or, with ``retrain_epochs > 0``, new ones trained
    from scratch for that many epochs on the whole training data (train and validation splits) of
    the trial's dataset.

    Once written, the file is loaded back (``torch.export.load``, ``onnxruntime.InferenceSession``
    or ``torch.jit.load``) and run on a batch of 8 inputs drawn from a generator seeded with
    ``seed``; its outputs must be within 1e-4 of the network's. If they are not, the model file(s)
    are removed, no ``export.json`` is left (``spec.json`` is), and a ``RuntimeError`` is raised.

    ``export.json`` holds ``format``, ``files`` (each written model file's name and size in bytes),
    the network's ``params`` and ``flops`` (:func:`optuna_nas.metrics.count_cost`),
    ``input_shape``, ``batch_size`` and ``dynamic_batch``, ``max_abs_difference``, ``tolerance``,
    ``torch_version`` (and, for ONNX, ``onnxruntime_version``), ``weights`` (their origin), and the
    ``study`` and ``trial``.

    Args:
        study: The study holding the trial.
        trial_number: The trial's number.
        out_dir: The folder to write to; created if missing. Files of the same names are replaced.
        format: One of :data:`EXPORT_FORMATS`.
        retrain_epochs: Train from scratch for this many epochs instead of loading the trial's
            weights (0: load them).
        artifact_store: The Optuna artifact store holding the trial's ``weights.npz``.
        dataset: The dataset to retrain on (default: the one the trial names, when it loads here).
        seed: Seed of the network's initialisation, of retraining and of the check batch.

    Returns:
        The contents of ``export.json``, and ``paths``: ``spec``, ``model``, ``model_data`` (ONNX's
        side file, when written) and ``report`` (``export.json``).

    Raises:
        ValueError: ``format`` is not one of :data:`EXPORT_FORMATS`, the trial does not exist or
            recorded no architecture, ``retrain_epochs`` is negative, or there are no saved weights
            (or ``artifact_store`` lacks them) and ``retrain_epochs`` is 0.
        ImportError: ``format="onnx"`` and the ``onnx`` extra is not installed.
        RuntimeError: The written file's outputs differ from the network's by 1e-4 or more.

    Example:
        >>> store = optuna.artifacts.FileSystemArtifactStore("optuna_nas_artifacts")  # doctest: +SKIP
        >>> export(study, 7, "model", artifact_store=store)["max_abs_difference"]  # doctest: +SKIP
        0.0
        >>> network = torch.export.load("model/model.pt2").module()  # doctest: +SKIP
    """
    import torch

    from optuna_nas.metrics import count_cost
    from optuna_nas.models import build_model

    check_one_of("format", format, EXPORT_FORMATS)
    check_int("retrain_epochs", retrain_epochs, minimum=0)
    check_int("seed", seed, minimum=0)
    if format == "onnx":
        _require_onnx()
    trial = find_trial(study, trial_number)
    spec = trial_spec(trial)
    if "input_shape" not in trial.user_attrs:
        raise ValueError(f"trial_number: trial {trial.number} recorded no input_shape to build its network for.")
    input_shape, num_classes = tuple(trial.user_attrs["input_shape"]), trial.user_attrs["num_classes"]
    torch.manual_seed(seed)
    model = build_model(spec, input_shape=input_shape, num_classes=num_classes)
    if retrain_epochs > 0:
        origin = f"retrained for {retrain_epochs} epochs on the full training split"
        _retrain(model, trial, dataset, retrain_epochs, seed)
    elif _load_weights(study, trial, artifact_store, model):
        origin = "the trial's trained weights"
    else:
        raise ValueError(
            f"retrain_epochs: trial {trial_number} has no saved weights (no artifact store, or it was not "
            f"complete); pass retrain_epochs > 0 to train the architecture from scratch, got {retrain_epochs}."
        )
    model = model.cpu().eval()
    batch = torch.randn(_CHECK_BATCH, *input_shape, generator=torch.Generator().manual_seed(seed))
    os.makedirs(out_dir, exist_ok=True)
    model_path = os.path.join(out_dir, _MODEL_FILES[format])
    paths = {"spec": os.path.join(out_dir, "spec.json"), "model": model_path}
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

    report_path = os.path.join(out_dir, "export.json")
    # Files of an earlier export in this folder must not pass for this one's.
    candidates = [model_path, *([model_path + ".data"] if format == "onnx" else [])]
    for path in [report_path, *candidates]:
        if os.path.exists(path):
            os.remove(path)
    try:
        with torch.no_grad():
            expected = model(batch)
            dynamic = _WRITERS[format](model, batch, model_path)
            outputs = _RUNNERS[format](model_path, batch)
        difference = float((outputs - expected).abs().max())
        if not difference < _TOLERANCE:  # also catches NaN
            raise RuntimeError(
                f"the exported {format} file's outputs differ from the network's by {difference:.3g} "
                f"(tolerance {_TOLERANCE:g}) on a batch of {len(batch)}; it was removed."
            )
    except BaseException:
        for path in candidates:
            if os.path.exists(path):
                os.remove(path)
        raise

    cost = count_cost(model, input_shape=input_shape)
    written = [path for path in candidates if os.path.exists(path)]
    if len(written) > 1:
        paths["model_data"] = written[1]
    paths["report"] = report_path
    report: dict[str, Any] = {
        "format": format,
        "files": {os.path.basename(path): os.path.getsize(path) for path in written},
        "params": cost.params,
        "flops": cost.flops,
        "input_shape": list(input_shape),
        "batch_size": len(batch),
        "dynamic_batch": dynamic,
        "max_abs_difference": difference,
        "tolerance": _TOLERANCE,
        "torch_version": torch.__version__,
        "weights": origin,
        "study": study.study_name,
        "trial": trial.number,
    }
    if format == "onnx":
        import onnxruntime

        report["onnxruntime_version"] = onnxruntime.__version__
    with open(report_path, "w") as f:
        json.dump(report, f, indent=2)
    return {**report, "paths": paths}


def _require_onnx() -> None:
    missing = []
    for name in _ONNX_PACKAGES:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        raise ImportError(
            f"format='onnx' needs {', '.join(missing)}, not installed here: pip install 'optuna-nas[onnx]'",
            name=missing[0],
        )


def _export_program(model: Any, batch: Any) -> tuple[Any, Any]:
    """``torch.export`` ``model`` with a dynamic batch dimension, else for the batch's size (warned).

    Returns:
        The ``ExportedProgram``, and the ``dynamic_shapes`` it was exported with (``None`` when the
        batch size is fixed). With a dynamic batch, the example has 2 inputs, so the check on the
        whole batch shows that the program takes other sizes.
    """
    import torch

    dynamic_shapes = ({0: torch.export.Dim("batch", min=1)},)
    try:
        return torch.export.export(model, (batch[:2],), dynamic_shapes=dynamic_shapes), dynamic_shapes
    except Exception as error:  # noqa: BLE001 - retried with a fixed batch; any other fault fails again there
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    program = torch.export.export(model, (batch,))
    warnings.warn(
        f"the exported network takes batches of exactly {len(batch)} inputs: it could not be exported with a "
        f"dynamic batch dimension ({reason})",
        stacklevel=4,
    )
    return program, None


def _write_pt2(model: Any, batch: Any, path: str) -> bool:
    import torch

    program, dynamic_shapes = _export_program(model, batch)
    torch.export.save(program, path)
    return dynamic_shapes is not None


def _write_onnx(model: Any, batch: Any, path: str) -> bool:
    import torch

    # The exporter would capture the network with torch.export itself; giving it the program keeps the
    # batch dimension decided in one place (and named "batch" in the file).
    program, dynamic_shapes = _export_program(model, batch)
    torch.onnx.export(
        program,
        (batch[:2] if dynamic_shapes is not None else batch,),
        path,
        input_names=["images"],
        output_names=["logits"],
        dynamic_shapes=dynamic_shapes,
        dynamo=True,
        verbose=False,
    )
    return dynamic_shapes is not None


def _write_torchscript(model: Any, batch: Any, path: str) -> bool:
    import torch

    with warnings.catch_warnings():
        # Deprecated by torch, but what older runtimes load; the docstring says so.
        warnings.simplefilter("ignore", FutureWarning)
        # Shape tests on the spatial size (FactorizedReduce) become constants, right for the one input
        # shape the network is built for; the check on the whole batch shows the trace holds for other
        # batch sizes.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # type: ignore[attr-defined]  # public, not in __all__
        scripted = torch.jit.trace(model, batch[:2])  # type: ignore[no-untyped-call]  # torch.jit.trace is unannotated
    scripted.save(path)
    return True


def _run_pt2(path: str, batch: Any) -> Any:
    import torch

    return torch.export.load(path).module()(batch)


def _run_onnx(path: str, batch: Any) -> Any:
    import onnxruntime
    import torch

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {session.get_inputs()[0].name: batch.numpy()})
    return torch.from_numpy(logits)


def _run_torchscript(path: str, batch: Any) -> Any:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        reloaded = torch.jit.load(path)  # type: ignore[no-untyped-call]  # torch.jit.load is unannotated
    return reloaded(batch)


_WRITERS: dict[str, Callable[[Any, Any, str], bool]] = {
    "pt2": _write_pt2,
    "onnx": _write_onnx,
    "torchscript": _write_torchscript,
}
_RUNNERS: dict[str, Callable[[str, Any], Any]] = {"pt2": _run_pt2, "onnx": _run_onnx, "torchscript": _run_torchscript}


def _retrain(model: Any, trial: FrozenTrial, dataset: Any, epochs: int, seed: int) -> None:
    import torch

    from optuna_nas.data import load
    from optuna_nas.training import TrainingSettings
    from optuna_nas.training import train

    if dataset is None:
        name = trial.user_attrs.get("dataset")
        if name is None or name.startswith(("cifar100", "imagenet16")) or "input_shape" not in trial.user_attrs:
            raise ValueError(f"dataset: trial {trial.number} names no dataset this machine can load; pass one.")
        dataset = load(name)
    images = torch.cat([dataset.train_x, dataset.val_x])
    labels = torch.cat([dataset.train_y, dataset.val_y])
    train(model, images, labels, dataset.test_x, dataset.test_y, TrainingSettings(epochs=epochs), seed=seed)
