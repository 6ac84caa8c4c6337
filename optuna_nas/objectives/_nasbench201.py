"""Tabular NAS-Bench-201 objective: a search's trial costs a table look-up instead of a training run."""

from __future__ import annotations

import csv
import functools
import math
import os
import typing
from importlib import resources

import optuna

from optuna_nas._validation import check_bool
from optuna_nas._validation import check_one_of
from optuna_nas.spaces import NASBench201Space
from optuna_nas.spaces import NASBench201Spec

#: The benchmark's network for each dataset (column prefix in the table): input shape, classes.
NB201_NETWORKS = {"cifar10": ((3, 32, 32), 10), "cifar100": ((3, 32, 32), 100), "imagenet16": ((3, 16, 16), 120)}
NB201_DATASETS = tuple(NB201_NETWORKS)
COSTS_FILE = "nasbench201_costs.csv"
#: The NAS-Bench-201 table shipped with the package.
DEFAULT_TABLE = str(resources.files("optuna_nas.objectives").joinpath("data").joinpath("nasbench201.csv"))


class NASBench201:
    """Score the NAS-Bench-201 cell a trial asks for by its row in a NAS-Bench-201 table.

    The trial takes the same define-by-run decisions as a real search (:class:`NASBench201Space`),
    and gets back the cell's ``{dataset}_{signal}`` accuracy from ``table`` - by default the
    12-epoch validation accuracy, the signal the benchmark's protocol allows - as a fraction in
    [0, 1], like every accuracy this package returns or logs (the table itself is in percent). No ``test`` column
    is ever read: the objective cannot leak what a search is judged by.

    With ``multi_objective=True`` it returns ``(accuracy, params, flops)``. Params and FLOPs
    (``2 x`` thop's MACs) were counted once for every cell on the benchmark's real network, built by
    :mod:`optuna_nas.models` (CIFAR-10: 3x32x32 input, 10 classes; CIFAR-100: 100 classes;
    ImageNet16-120: 3x16x16 input, 120 classes), by ``benchmarks/nasbench201_costs.py``.

    Recorded in ``trial.user_attrs``: ``spec`` (the cell as JSON-safe data, as every objective records
    it), ``arch`` (the benchmark's string form), ``spec_hash``, and the
    network's ``dataset``, ``input_shape`` and ``num_classes`` (so the cell can be exported).

    Args:
        table: Path of a CSV in the NAS-Bench-201 table format (an ``arch`` column and
            ``{dataset}_{signal}`` columns); any table in that format works.
        dataset: ``cifar10``, ``cifar100`` or ``imagenet16``.
        signal: Column suffix of the search signal, e.g. ``valid_12ep``; never a test column.
        multi_objective: Also return params and FLOPs.

    Raises:
        ValueError: An argument is out of range, or the table lacks the column asked for.
        FileNotFoundError: ``table`` does not exist.
    """

    def __init__(
        self,
        table: str | os.PathLike[str],
        dataset: str = "cifar10",
        *,
        signal: str = "valid_12ep",
        multi_objective: bool = False,
    ) -> None:
        self.dataset = check_one_of("dataset", dataset, NB201_DATASETS)
        if not isinstance(signal, str) or "test" in signal:
            raise ValueError(f"signal must name a non-test column suffix such as 'valid_12ep', got {signal!r}.")
        self.signal = signal
        self.multi_objective = check_bool("multi_objective", multi_objective)
        self.table = os.fspath(table)
        self.space = NASBench201Space()
        column = f"{dataset}_{signal}"
        try:
            self._signal = read_column(self.table, column)
        except ValueError as error:
            if f"no {column!r} column" not in str(error):
                raise
            raise ValueError(f"signal: the table {self.table!r} has no {column!r} column, got {signal!r}.") from None

    @property
    def directions(self) -> list[str]:
        """Study directions matching the returned values."""
        return ["maximize", "minimize", "minimize"] if self.multi_objective else ["maximize"]

    @property
    def metric_names(self) -> list[str]:
        """Names of the returned values, for ``study.set_metric_names``."""
        return ["accuracy", "params", "flops"] if self.multi_objective else ["accuracy"]

    def cost(self, arch: str) -> tuple[int, int]:
        """``(params, flops)`` of ``arch`` on this dataset's network."""
        return _costs(self.dataset)[arch]

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float, float]:
        spec = typing.cast(NASBench201Spec, self.space.suggest(trial))  # the NAS-Bench-201 space's spec
        arch = spec.arch_str
        trial.set_user_attr("spec", spec.to_dict())
        trial.set_user_attr("arch", arch)
        trial.set_user_attr("spec_hash", spec.spec_hash)
        input_shape, num_classes = NB201_NETWORKS[self.dataset]
        trial.set_user_attr("dataset", self.dataset)
        trial.set_user_attr("input_shape", list(input_shape))
        trial.set_user_attr("num_classes", num_classes)
        accuracy = self._signal.get(arch)
        if accuracy is None:
            trial.set_user_attr("fail_reason", f"{arch} is not in the table {self.table}")
            return tuple([math.nan] * 3) if self.multi_objective else math.nan  # type: ignore[return-value]
        accuracy /= 100.0  # the table's percent, as the fraction every objective returns
        if not self.multi_objective:
            return accuracy
        params, flops = self.cost(arch)
        return accuracy, float(params), float(flops)


def read_column(table: str, column: str) -> dict[str, float]:
    """``{arch: value}`` of one column of a NAS-Bench-201 table; no other column is kept.

    Raises:
        FileNotFoundError: ``table`` does not exist.
        ValueError: The table has no ``arch`` column or no ``column``, a value of ``column`` is
            not a number, or the file is not CSV text.
    """
    if not os.path.isfile(table):
        raise FileNotFoundError(f"table: no file at {table!r}.")
    # The errors name the file, the column and the line, never what the file holds: a table path
    # can come from a study's saved settings, which anyone who can write the storage may edit.
    try:
        with open(table, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            for needed in ("arch", column):
                if needed not in header:
                    raise ValueError(f"table: {table!r} has no {needed!r} column ({len(header)} columns).")
            values: dict[str, float] = {}
            for row in reader:
                try:
                    values[row["arch"]] = float(row[column])
                except (TypeError, ValueError):
                    raise ValueError(f"table: {table!r} line {reader.line_num}: {column!r} is not a number.") from None
            return values
    except (UnicodeDecodeError, csv.Error):
        raise ValueError(f"table: {table!r} is not a CSV text file.") from None


@functools.cache
def _costs(dataset: str) -> dict[str, tuple[int, int]]:
    """``{arch: (params, flops)}`` for every cell, from the file shipped with the package."""
    text = resources.files("optuna_nas.objectives").joinpath("data").joinpath(COSTS_FILE).read_text()
    rows = csv.DictReader(text.splitlines())
    return {row["arch"]: (int(row[f"{dataset}_params"]), 2 * int(row[f"{dataset}_macs"])) for row in rows}
