"""What the training objectives share: their metrics, their dataset argument, what a trial records."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import optuna

from optuna_nas._validation import check_one_of

if TYPE_CHECKING:
    from optuna_nas.data import ImageDataset
    from optuna_nas.spaces import ArchitectureSpec

#: Every metric an objective can return, and the direction it is optimised in.
METRIC_DIRECTIONS = {
    "accuracy": "maximize",
    "params": "minimize",
    "flops": "minimize",
    "macs": "minimize",
    "latency": "minimize",
}
DEFAULT_OBJECTIVES = ("accuracy", "params", "flops")


def check_objectives(objectives: Any) -> tuple[str, ...]:
    """``objectives`` as a tuple of distinct metric names, else a ``ValueError`` naming it."""
    if isinstance(objectives, str) or not isinstance(objectives, Sequence) or not objectives:
        raise ValueError(f"objectives must be a non-empty sequence of metric names, got {objectives!r}.")
    for metric in objectives:
        check_one_of("objectives", metric, tuple(METRIC_DIRECTIONS))
    if len(set(objectives)) != len(objectives):
        raise ValueError(f"objectives must not repeat a metric, got {list(objectives)!r}.")
    return tuple(objectives)


def resolve_dataset(dataset: ImageDataset | str) -> ImageDataset:
    """A dataset given by name is loaded (:func:`optuna_nas.data.load`); the name is checked first."""
    from optuna_nas.data import ImageDataset

    if isinstance(dataset, str):
        from optuna_nas.data import available_datasets
        from optuna_nas.data import load

        check_one_of("dataset", dataset, available_datasets())
        return load(dataset)
    if not isinstance(dataset, ImageDataset):
        raise ValueError(f"dataset must be an optuna_nas.data.ImageDataset or a dataset's name, got {dataset!r}.")
    return dataset


class MetricObjective:
    """The ``directions`` and ``metric_names`` of an objective returning ``self.objectives``."""

    objectives: tuple[str, ...]

    @property
    def directions(self) -> list[str]:
        """Study directions matching the returned values."""
        return [METRIC_DIRECTIONS[metric] for metric in self.objectives]

    @property
    def metric_names(self) -> list[str]:
        """Names of the returned values, for ``study.set_metric_names``."""
        return list(self.objectives)


def record_architecture(trial: optuna.Trial, spec: ArchitectureSpec, *, device: Any, dataset: ImageDataset) -> None:
    """Record what pareto tables, export and the dashboard read of a trial: the spec (``spec``,
    ``spec_hash``, ``architecture``), the ``device`` and the network's ``dataset``, ``input_shape``
    and ``num_classes``.
    """
    trial.set_user_attr("spec", spec.to_dict())
    trial.set_user_attr("spec_hash", spec.spec_hash)
    trial.set_user_attr("architecture", spec.summary())
    trial.set_user_attr("device", str(device))
    trial.set_user_attr("dataset", dataset.name)
    trial.set_user_attr("input_shape", list(dataset.input_shape))
    trial.set_user_attr("num_classes", dataset.num_classes)


@dataclasses.dataclass
class TrainingOutcome:
    """Whether the training inside :func:`training_failures` ran out of CUDA memory."""

    out_of_memory: bool = False


@contextlib.contextmanager
def training_failures(trial: optuna.Trial) -> Iterator[TrainingOutcome]:
    """Turn what may go wrong while a trial trains into its outcome: a non-finite loss prunes the
    trial (``pruned_reason``); CUDA running out of memory is recorded (``fail_reason``) and
    swallowed, and the yielded outcome says so, so the caller frees memory outside the handler
    (where the traceback no longer holds the tensors) and returns NaN values.
    """
    import torch

    from optuna_nas.training import NonFiniteLossError

    outcome = TrainingOutcome()
    try:
        yield outcome
    except NonFiniteLossError as error:
        trial.set_user_attr("pruned_reason", str(error))
        raise optuna.TrialPruned(str(error)) from None
    except torch.cuda.OutOfMemoryError as error:
        trial.set_user_attr("fail_reason", f"CUDA out of memory: {error}".splitlines()[0][:500])
        outcome.out_of_memory = True
