"""A predictor fitted on architectures, with the encoder its kind reads them through."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from optuna_nas.predictors._architecture import Architecture
from optuna_nas.predictors._base import Predictor
from optuna_nas.predictors._base import SequencePredictor
from optuna_nas.predictors._encoders import TokenEncoder
from optuna_nas.predictors._encoders import VectorEncoder
from optuna_nas.predictors._trees import TreeEnsemble


@dataclasses.dataclass(frozen=True)
class FittedPredictor:
    """A fitted predictor and its encoder: :meth:`predict` reads architectures as it was fitted.

    Attributes:
        encoder: A :class:`VectorEncoder`, or a :class:`TokenEncoder` for a sequence predictor.
        predictor: The fitted predictor.
    """

    encoder: VectorEncoder | TokenEncoder
    predictor: Predictor

    def predict(self, architectures: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray]:
        """The predicted mean and spread of each architecture, as float arrays."""
        mean, spread = self.predictor.predict(_encode(self.encoder, architectures))
        return np.asarray(mean, dtype=float), np.asarray(spread, dtype=float)


def fit_on_architectures(
    architectures: Sequence[Architecture],
    targets: Sequence[float],
    *,
    predictor: Predictor | None = None,
    seed: int = 0,
) -> FittedPredictor:
    """Fit a copy of ``predictor`` (unfitted, left as it is) on ``architectures`` and their scores.

    A sequence predictor (:class:`LSTMEnsemble`) reads :class:`TokenEncoder` ids, any other
    :class:`VectorEncoder` vectors; either encoder is fitted on ``architectures``. Default: a
    :class:`TreeEnsemble` random forest of 100 trees seeded with ``seed``.

    Raises:
        ValueError: The architectures or targets are malformed, or fewer than 2.
    """
    model: Predictor = TreeEnsemble(n_estimators=100, seed=seed) if predictor is None else copy.deepcopy(predictor)
    encoder: VectorEncoder | TokenEncoder = (
        TokenEncoder() if isinstance(model, SequencePredictor) else VectorEncoder()
    ).fit(architectures)
    model.fit(_encode(encoder, architectures), list(targets))
    return FittedPredictor(encoder=encoder, predictor=model)


def _encode(encoder: VectorEncoder | TokenEncoder, architectures: Sequence[Architecture]) -> Any:
    if isinstance(encoder, TokenEncoder):
        return encoder.encode_many(architectures)
    return encoder.transform(architectures)
