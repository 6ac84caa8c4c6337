"""The protocol every predictor keeps: ``fit``, ``update`` and ``predict`` returning mean and spread."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from typing import Any
from typing import TypeVar

import numpy as np

from optuna_nas._validation import check_finite_array

_P = TypeVar("_P", bound="Predictor")

#: Bounds on the predictors' sizes: larger ones exhaust memory or never finish a fit.
MAX_MEMBERS = 1000
MAX_TREES = 100_000
MAX_EPOCHS = 100_000
MAX_WIDTH = 65_536


class Predictor(abc.ABC):
    """A regressor from encoded architectures to scores, with an uncertainty.

    :meth:`fit` learns from ``(X, y)``; :meth:`update` adds data and refits on everything seen so
    far, so that the fitted predictor equals ``fit`` on all the data, in the order it came, whatever
    the calls that brought it (a process that fits once on a study's finished trials gets the
    predictor another built trial by trial); :meth:`predict` returns the mean prediction and its
    spread (the standard deviation over the ensemble's members or trees).

    Subclasses read ``X`` in one form (:meth:`_check_inputs`), and implement :meth:`_fit` and
    :meth:`_predict`.
    """

    def __init__(self) -> None:
        self._inputs: Any = None
        self._targets: np.ndarray | None = None

    @property
    def n_samples(self) -> int:
        """How many samples the predictor was fitted on (0 before :meth:`fit`)."""
        return 0 if self._targets is None else len(self._targets)

    def fit(self: _P, X: Any, y: Any) -> _P:
        """Learn from ``X`` and the scores ``y``, forgetting any earlier data; returns ``self``.

        Raises:
            ValueError: ``X`` or ``y`` is malformed, they differ in length, or there are fewer
                than 2 samples; the message names the argument.
        """
        inputs = self._check_inputs(X, name="X", fitting=True)
        targets = _check_targets(y, len(inputs))
        if len(inputs) < 2:
            raise ValueError(f"X must hold at least 2 samples to fit on, got {len(inputs)}.")
        self._fit(inputs, targets)
        self._inputs, self._targets = inputs, targets
        return self

    def update(self: _P, X: Any, y: Any) -> _P:
        """Add ``X`` and ``y`` to the data seen so far and refit on all of it; returns ``self``.

        Equal to :meth:`fit` on the concatenation of every batch given since the last ``fit``
        (a fit from scratch, not a warm start). Before any ``fit`` it is ``fit``.

        Raises:
            ValueError: ``X`` or ``y`` is malformed or they differ in length; the message names
                the argument.
        """
        if self._targets is None:
            return self.fit(X, y)
        inputs = self._check_inputs(X, name="X", fitting=False)
        targets = _check_targets(y, len(inputs))
        return self.fit(self._concatenate(self._inputs, inputs), np.concatenate([self._targets, targets]))

    def predict(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, spread)``: one float64 array each, one value per sample of ``X``.

        Raises:
            ValueError: ``X`` is malformed; the message names it.
            RuntimeError: The predictor is not fitted.
        """
        if self._targets is None:
            raise RuntimeError(f"{type(self).__name__} is not fitted: call fit(X, y) first.")
        inputs = self._check_inputs(X, name="X", fitting=False)
        if len(inputs) == 0:
            return np.zeros(0), np.zeros(0)
        mean, spread = self._predict(inputs)
        return np.asarray(mean, dtype=np.float64), np.asarray(spread, dtype=np.float64)

    @abc.abstractmethod
    def _check_inputs(self, X: Any, *, name: str, fitting: bool) -> Any:
        """``X`` in the form :meth:`_fit` and :meth:`_predict` take, or a ``ValueError`` naming ``name``.

        ``fitting`` is false when ``X`` must match the data already fitted on (its width).
        """

    @abc.abstractmethod
    def _concatenate(self, first: Any, second: Any) -> Any:
        """Two checked inputs as one."""

    @abc.abstractmethod
    def _fit(self, inputs: Any, targets: np.ndarray) -> None:
        """Fit from scratch on checked inputs and float64 targets."""

    @abc.abstractmethod
    def _predict(self, inputs: Any) -> tuple[np.ndarray, np.ndarray]:
        """Mean and spread on checked, non-empty inputs."""


class VectorPredictor(Predictor):
    """A predictor of fixed-length vectors: ``X`` is a 2-D array, one row per architecture."""

    def _check_inputs(self, X: Any, *, name: str, fitting: bool) -> np.ndarray:
        matrix = check_finite_array(name, X, ndim=2)
        if not fitting and self._inputs is not None and matrix.shape[1] != self._inputs.shape[1]:
            raise ValueError(
                f"{name} must have {self._inputs.shape[1]} columns, as the data fitted on, got {matrix.shape[1]}."
            )
        return matrix

    def _concatenate(self, first: np.ndarray, second: np.ndarray) -> np.ndarray:
        return np.concatenate([first, second])


class SequencePredictor(Predictor):
    """A predictor of token sequences: ``X`` holds one non-empty sequence of ids >= 0 per architecture."""

    def _check_inputs(self, X: Any, *, name: str, fitting: bool) -> list[tuple[int, ...]]:
        if isinstance(X, (str, bytes)) or not isinstance(X, (Sequence, np.ndarray)):
            raise ValueError(f"{name} must be a sequence of token-id sequences, got {_short(X)}.")
        sequences = []
        for index, sequence in enumerate(X):
            if isinstance(sequence, (str, bytes)) or not isinstance(sequence, (Sequence, np.ndarray)):
                raise ValueError(f"{name}[{index}] must be a sequence of token ids, got {_short(sequence)}.")
            ids = tuple(sequence)
            if len(ids) == 0 or not all(
                isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in ids
            ):
                raise ValueError(f"{name}[{index}] must be a non-empty sequence of integer ids >= 0, got {ids!r}.")
            sequences.append(tuple(int(i) for i in ids))
        return sequences

    def _concatenate(self, first: list[tuple[int, ...]], second: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
        return first + second


def member_seed(seed: int, member: int) -> int:
    """The seed of an ensemble's ``member``: a 32-bit int drawn from ``(seed, member)``."""
    return int(np.random.SeedSequence([seed, member]).generate_state(1)[0])


def _check_targets(y: Any, length: int) -> np.ndarray:
    targets = check_finite_array("y", y, ndim=1)
    if len(targets) != length:
        raise ValueError(f"y must hold one score per sample of X ({length}), got {len(targets)}.")
    return targets


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 200 else text[:200] + "..."
