"""Train-and-measure objective: accuracy, params and FLOPs of the architecture a trial asks for."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import optuna

from optuna_nas._validation import check_bool
from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas._validation import check_one_of
from optuna_nas.objectives._common import DEFAULT_OBJECTIVES
from optuna_nas.objectives._common import MetricObjective
from optuna_nas.objectives._common import check_objectives
from optuna_nas.objectives._common import record_architecture
from optuna_nas.objectives._common import resolve_dataset
from optuna_nas.objectives._common import training_failures
from optuna_nas.pruners import LearningCurvePruner
from optuna_nas.spaces import ArchitectureSpec
from optuna_nas.spaces import Space

if TYPE_CHECKING:
    import torch

    from optuna_nas.data import ImageDataset

#: Values the objective can return, and the direction each is optimised in.
OPTIMIZER_NAMES = ("adam", "adamw", "sgd")

_logger = logging.getLogger(__name__)


class EarlyStop(optuna.TrialPruned):
    """MetaQNN's "penalize" stop: validation accuracy fell below the threshold for its epoch."""


@dataclasses.dataclass(frozen=True)
class TrainingProgress:
    """Where a trial's training stands, as :class:`ImageClassification` tells its progress callbacks.

    Attributes:
        epoch: The epoch running, or just evaluated, counted from 1.
        epochs: Epochs the trial trains for.
        batch: Batches of this epoch done (0 as the epoch begins).
        batches: Batches per epoch.
        metrics: ``{"train_loss": ..., "val_accuracy": ...}`` once the epoch is evaluated (the
            values recorded in the trial's curves); empty while it runs.
    """

    epoch: int
    epochs: int
    batch: int
    batches: int
    metrics: Mapping[str, float] = dataclasses.field(default_factory=dict)

    @property
    def epoch_end(self) -> bool:
        """Whether the epoch is over and evaluated (``metrics`` holds its values)."""
        return bool(self.metrics)


ProgressCallback = Callable[[optuna.Trial, TrainingProgress], None]


class ImageClassification(MetricObjective):
    """Build the trial's architecture, train it, and return its accuracy and cost.

    Each call asks ``space`` for an architecture through the trial (so the study's sampler takes the
    decisions), builds it, counts its parameters and FLOPs (``2 x`` thop's MACs), trains it with
    the given settings and returns the metrics named in ``objectives`` in that order: validation
    accuracy by default, then parameters and FLOPs. Pass ``objective.directions`` to
    ``optuna.create_study``.

    Recorded in ``trial.user_attrs``: ``spec`` (the architecture as JSON-safe data), ``spec_hash``,
    ``architecture`` (a one-line summary), ``dataset``, ``input_shape``, ``num_classes``,
    ``params``, ``macs``, ``flops``, ``val_accuracy_curve``, ``train_loss_curve``,
    ``test_accuracy``, ``train_seconds``, ``device``, and ``latency_ms`` when measured. A
    trial stopped early records ``pruned_reason``; a failed one ``fail_reason``.

    Budgets: ``max_params`` and ``max_flops`` become Optuna trial constraints
    (``trial.set_constraint("params", params - max_params)``, feasible when <= 0), set from the built
    network before any training, which the project's samplers (and Optuna's constrained samplers)
    steer by. By default a network over budget is not trained at all: the trial ends pruned with
    the reason in ``pruned_reason``, so a hard budget costs nothing. ``train_infeasible=True``
    trains it anyway.

    In a single-objective study the validation accuracy is reported after every epoch, so Optuna's
    pruners work. ``early_stop_thresholds`` is MetaQNN's "penalize" setting, for any study: after
    epoch ``e``, a validation accuracy below ``thresholds[e]`` stops training and prunes the trial.
    ``curve_pruner`` (a :class:`~optuna_nas.pruners.LearningCurvePruner`) is asked after every epoch,
    in any study, with the trial's ``val_accuracy_curve`` and the accuracy objective of the complete
    trials: this is how a multi-objective study, where Optuna does not prune, is pruned on learning
    curves. In a single-objective study, passing the pruner to ``optuna.create_study(pruner=...)``
    does the same through the reported values.

    Every reported accuracy (per epoch, final, test) is measured after the network's BatchNorm
    statistics are recalibrated on ``bn_recalibration_batches`` training batches, as one-shot NAS
    does. After an epoch or two the running averages kept during training still trail the weights,
    and deep cell networks then score near chance in evaluation mode although they have learned:
    short trainings would score them partly by that lag. Recalibration changes only the BatchNorm buffers
    (the training that follows is the same) and costs a few percent of an epoch.

    ``progress_callbacks`` see the training while it runs: each is called as
    ``callback(trial, progress)`` with a :class:`TrainingProgress` as every epoch begins, about
    every 2 seconds inside a long epoch, and after each epoch's evaluation (with its metrics, before
    pruning decides). They run in the trial's thread, so several at once with ``n_jobs > 1``. A
    callback that raises does not end the trial: a warning with the traceback is logged the first
    time, and training goes on. ``objective.progress_callbacks`` is a list, which may be appended
    to after the objective is made.

    Bad runs end only their own trial: a NaN or infinite loss prunes it, a CUDA out-of-memory error
    fails it (values NaN) after freeing the memory, and the study goes on.

    Args:
        space: The search space to ask for an architecture.
        dataset: An :class:`~optuna_nas.data.ImageDataset`, or a name for :func:`optuna_nas.data.load`.
        epochs: Training epochs per trial.
        batch_size: Minibatch size.
        learning_rate: Optimizer learning rate.
        optimizer: ``adam`` (default), ``adamw`` or ``sgd`` (Nesterov momentum 0.9).
        weight_decay: Weight decay.
        bn_recalibration_batches: Training batches that re-estimate the BatchNorm statistics before
            each evaluation; 0 evaluates with the running averages kept during training.
        objectives: Metrics to return, in order, from ``accuracy``, ``params``, ``flops``, ``macs``
            and ``latency`` (median single-sample forward time in ms on the device).
        early_stop_thresholds: ``{epoch: minimum validation accuracy}``, epochs counted from 1.
        curve_pruner: A :class:`~optuna_nas.pruners.LearningCurvePruner` to ask after every epoch,
            or ``None``; needs ``accuracy`` among ``objectives``.
        max_params: Parameter budget (a constraint), or ``None``.
        max_flops: FLOPs budget (a constraint), or ``None``.
        train_infeasible: Train networks over budget too (default: prune them untrained).
        device: ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda`` or ``cuda:N``.
        seed: Base seed; a trial's weights and batch order come from ``(seed, trial.number)``.
        artifact_store: An Optuna artifact store (e.g.
            ``optuna.artifacts.FileSystemArtifactStore``). When given, each complete trial uploads
            its trained weights (``weights.npz``, plain arrays: loading them runs no pickle) and a
            picture of its network (``network.png``), which optuna-dashboard shows and
            :func:`optuna_nas.analysis.export` reuses.
        progress_callbacks: Callables ``(trial, progress)`` told how training goes, see above.

    Raises:
        ValueError: An argument is out of range (the message names it and shows the value), or the
            space does not fit the dataset's images (``space.check_input_shape``).

    Example:
        >>> from optuna_nas import spaces, objectives
        >>> space = spaces.ChainSpace(max_layers=3, input_size=8)  # digits are 8x8 images
        >>> objective = objectives.ImageClassification(space, "digits")
        >>> study = optuna.create_study(directions=objective.directions)  # doctest: +SKIP
        >>> study.optimize(objective, n_trials=3)  # doctest: +SKIP
    """

    def __init__(
        self,
        space: Space,
        dataset: ImageDataset | str = "mnist5k",
        *,
        epochs: int = 3,
        batch_size: int = 128,
        learning_rate: float = 1e-3,
        optimizer: str = "adam",
        weight_decay: float = 0.0,
        bn_recalibration_batches: int = 4,
        objectives: Sequence[str] = DEFAULT_OBJECTIVES,
        early_stop_thresholds: Mapping[int, float] | None = None,
        max_params: float | None = None,
        max_flops: float | None = None,
        train_infeasible: bool = False,
        device: str = "auto",
        seed: int = 0,
        artifact_store: Any = None,
        progress_callbacks: Sequence[ProgressCallback] = (),
        curve_pruner: LearningCurvePruner | None = None,
    ) -> None:
        from optuna_nas.training import TrainingSettings
        from optuna_nas.training import resolve_device

        if not isinstance(space, Space):
            raise ValueError(f"space must be an optuna_nas.spaces.Space, got {space!r}.")
        self.settings = TrainingSettings(
            epochs=check_int("epochs", epochs, minimum=1),
            batch_size=check_int("batch_size", batch_size, minimum=1),
            learning_rate=check_number("learning_rate", learning_rate, low=0.0, low_open=True),
            optimizer=check_one_of("optimizer", optimizer, OPTIMIZER_NAMES),
            weight_decay=check_number("weight_decay", weight_decay, low=0.0),
            bn_recalibration_batches=check_int("bn_recalibration_batches", bn_recalibration_batches, minimum=0),
        )
        self.objectives = check_objectives(objectives)
        self.early_stop_thresholds = _check_thresholds(early_stop_thresholds, self.settings.epochs)
        if curve_pruner is not None and not isinstance(curve_pruner, LearningCurvePruner):
            raise ValueError(f"curve_pruner must be a LearningCurvePruner or None, got {curve_pruner!r}.")
        if curve_pruner is not None and "accuracy" not in self.objectives:
            raise ValueError(
                "curve_pruner predicts the accuracy: objectives must include 'accuracy', "
                f"got {list(self.objectives)!r}."
            )
        self.curve_pruner = curve_pruner
        self.budgets = {
            metric: check_number(f"max_{metric}", limit, low=0.0, low_open=True)
            for metric, limit in (("params", max_params), ("flops", max_flops))
            if limit is not None
        }
        self.train_infeasible = check_bool("train_infeasible", train_infeasible)
        self.seed = check_int("seed", seed)
        self.device = resolve_device(device)
        self.space = space
        dataset = resolve_dataset(dataset)
        space.check_input_shape(dataset.input_shape)  # before any training: the space must fit the images
        self.dataset = dataset
        self.artifact_store = artifact_store
        if isinstance(progress_callbacks, str) or not isinstance(progress_callbacks, Sequence):
            raise ValueError(f"progress_callbacks must be a sequence of callables, got {progress_callbacks!r}.")
        for callback in progress_callbacks:
            if not callable(callback):
                raise ValueError(f"progress_callbacks must hold callables, got {callback!r}.")
        self.progress_callbacks: list[ProgressCallback] = list(progress_callbacks)
        self._failed_callbacks: set[int] = set()
        self._failed_callbacks_lock = threading.Lock()
        self._resident: dict[str, torch.Tensor] | None = None
        self._resident_lock = threading.Lock()

    def _tensors(self) -> dict[str, torch.Tensor]:
        """The dataset's splits, moved to the device once and shared by every trial."""
        from optuna_nas.training import prepare_images

        with self._resident_lock:
            if self._resident is None:
                data = self.dataset
                self._resident = {
                    "train_x": prepare_images(data.train_x, self.device),
                    "train_y": data.train_y.to(self.device),
                    "val_x": prepare_images(data.val_x, self.device),
                    "val_y": data.val_y.to(self.device),
                    "test_x": prepare_images(data.test_x, self.device),
                    "test_y": data.test_y.to(self.device),
                }
            return self._resident

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        import torch

        from optuna_nas.metrics import count_cost
        from optuna_nas.metrics import measure_latency
        from optuna_nas.models import build_model
        from optuna_nas.models import initialize_parameters
        from optuna_nas.training import count_batches
        from optuna_nas.training import evaluate
        from optuna_nas.training import prepare_model
        from optuna_nas.training import train

        spec = self.space.suggest(trial)
        record_architecture(trial, spec, device=self.device, dataset=self.dataset)
        trial_seed = _trial_seed(self.seed, trial.number)
        input_shape = self.dataset.input_shape
        model = build_model(spec, input_shape=input_shape, num_classes=self.dataset.num_classes)
        initialize_parameters(model, seed=trial_seed)
        cost = count_cost(model, input_shape=input_shape)
        measured: dict[str, float] = {"params": cost.params, "macs": cost.macs, "flops": cost.flops}
        for key, value in measured.items():
            trial.set_user_attr(key, value)
        over = [
            f"{metric} {measured[metric]:.4g} > {limit:.4g}"
            for metric, limit in self.budgets.items()
            if measured[metric] > limit
        ]
        for metric, limit in self.budgets.items():
            trial.set_constraint(metric, measured[metric] - limit)
        if over and not self.train_infeasible:
            reason = "over budget, not trained: " + ", ".join(over)
            trial.set_user_attr("pruned_reason", reason)
            raise optuna.TrialPruned(reason)

        single_objective = len(trial.study.directions) == 1
        curve: list[float] = []
        losses: list[float] = []
        epochs = self.settings.epochs
        batches = count_batches(len(self.dataset.train_y), self.settings.batch_size)

        def during_epoch(epoch: int, done: int, total: int) -> None:
            self._notify(trial, TrainingProgress(epoch=epoch, epochs=epochs, batch=done, batches=total))

        def after_epoch(epoch: int, loss: float, accuracy: float) -> None:
            curve.append(accuracy)
            losses.append(loss)
            trial.set_user_attr("val_accuracy_curve", curve)
            trial.set_user_attr("train_loss_curve", losses)
            metrics = {"train_loss": loss, "val_accuracy": accuracy}
            self._notify(trial, TrainingProgress(epoch, epochs, batches, batches, metrics))
            threshold = self.early_stop_thresholds.get(epoch)
            if threshold is not None and accuracy < threshold:
                reason = f"validation accuracy {accuracy:.4f} < {threshold} after epoch {epoch}"
                trial.set_user_attr("pruned_reason", reason)
                raise EarlyStop(reason)
            if single_objective:
                trial.report(accuracy, epoch)
                if trial.should_prune():
                    trial.set_user_attr("pruned_reason", f"pruner stopped it after epoch {epoch}")
                    raise optuna.TrialPruned()
            if self.curve_pruner is not None:
                verdict = self.curve_pruner.judge(
                    trial.study, trial, curve_attr="val_accuracy_curve", objective=self.objectives.index("accuracy")
                )
                if verdict.prune:
                    trial.set_user_attr("pruned_reason", verdict.reason)
                    raise optuna.TrialPruned(verdict.reason)

        data = self._tensors()
        start = time.perf_counter()
        with training_failures(trial) as outcome:
            model = prepare_model(model, self.device)
            train(
                model,
                data["train_x"],
                data["train_y"],
                data["val_x"],
                data["val_y"],
                self.settings,
                seed=trial_seed,
                after_epoch=after_epoch,
                during_epoch=during_epoch if self.progress_callbacks else None,
            )
            trial.set_user_attr("train_seconds", time.perf_counter() - start)
            trial.set_user_attr("test_accuracy", evaluate(model, data["test_x"], data["test_y"]))
            if "latency" in self.objectives:
                measured["latency"] = measure_latency(model, input_shape=input_shape, device=str(self.device))
                trial.set_user_attr("latency_ms", measured["latency"])
        if outcome.out_of_memory:
            # Outside the handler, so the traceback no longer holds the tensors.
            del model
            torch.cuda.empty_cache()
            return _result([math.nan] * len(self.objectives))
        measured["accuracy"] = curve[-1]
        if self.artifact_store is not None:
            upload_trial_artifacts(trial, model, spec, self.artifact_store)
        return _result([float(measured[metric]) for metric in self.objectives])

    def _notify(self, trial: optuna.Trial, progress: TrainingProgress) -> None:
        for callback in list(self.progress_callbacks):
            try:
                callback(trial, progress)
            except Exception:
                # Progress is for watching: a broken display or tracker must not end a trial that
                # trains well, nor flood the log once per batch.
                with self._failed_callbacks_lock:
                    first = id(callback) not in self._failed_callbacks
                    self._failed_callbacks.add(id(callback))
                if first:
                    _logger.warning(
                        "Progress callback %r raised in trial %d; training goes on, and its later errors "
                        "are not logged.",
                        callback,
                        trial.number,
                        exc_info=True,
                    )


def upload_trial_artifacts(trial: optuna.Trial, model: Any, spec: ArchitectureSpec, artifact_store: Any) -> None:
    """Upload ``weights.npz`` (the state dict as plain arrays) and ``network.png`` for ``trial``.

    The weights go first; a spec whose picture cannot be drawn (a faulty ``graph()``) loses only
    the picture, with a warning.
    """
    import os
    import tempfile

    import numpy as np

    from optuna_nas.analysis import draw_architecture

    with tempfile.TemporaryDirectory() as folder:
        weights = os.path.join(folder, "weights.npz")
        np.savez(
            weights,
            **{
                k: v.detach().float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
                for k, v in model.state_dict().items()
            },
        )
        optuna.artifacts.upload_artifact(artifact_store=artifact_store, file_path=weights, study_or_trial=trial)
        picture = os.path.join(folder, "network.png")
        try:
            draw_architecture(spec).savefig(picture)
        except Exception:  # a picture is not worth the trained weights or the trial
            _logger.warning(
                "Trial %d: no network.png, the %s could not be drawn.", trial.number, type(spec).__name__, exc_info=True
            )
            return
        optuna.artifacts.upload_artifact(artifact_store=artifact_store, file_path=picture, study_or_trial=trial)


def _result(values: list[float]) -> float | tuple[float, ...]:
    return values[0] if len(values) == 1 else tuple(values)


def _trial_seed(seed: int, trial_number: int) -> int:
    return (seed * 1_000_003 + trial_number) % (2**63 - 1)


def _check_thresholds(thresholds: Mapping[int, float] | None, epochs: int) -> dict[int, float]:
    if thresholds is None:
        return {}
    if not isinstance(thresholds, Mapping):
        raise ValueError(f"early_stop_thresholds must map epochs to accuracies, got {thresholds!r}.")
    checked = {}
    for epoch, accuracy in thresholds.items():
        if isinstance(epoch, bool) or not isinstance(epoch, int) or not 1 <= epoch <= epochs:
            raise ValueError(f"early_stop_thresholds: epoch must be in [1, {epochs}], got {epoch!r}.")
        if isinstance(accuracy, bool) or not isinstance(accuracy, (int, float)) or not 0 <= accuracy <= 1:
            raise ValueError(f"early_stop_thresholds: accuracy must be in [0, 1], got {accuracy!r}.")
        checked[epoch] = float(accuracy)
    return checked
