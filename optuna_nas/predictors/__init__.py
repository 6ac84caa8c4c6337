"""Accuracy predictors over architecture encodings: for PNAS and predictor-guided search.

Encoders turn an architecture - a spec of any space of :mod:`optuna_nas.spaces`, its ``to_dict()``,
or any trial's params (define-by-run, any length) - into what a regressor reads:
:class:`TokenEncoder` a sequence of token ids, :class:`VectorEncoder` a fixed-length vector (one-hot
ops, adjacency and path features for the known spaces, a bag of named or hashed features for any
params). :func:`architecture_tokens` and :func:`architecture_features` show what they encode.

Predictors share one protocol (:class:`Predictor`): ``fit(X, y)``, ``update(X_new, y_new)`` (a
refit on all data seen) and ``predict(X) -> (mean, spread)``. :class:`TreeEnsemble` (scikit-learn's
random forest or gradient boosting) and :class:`MLPEnsemble` read vectors, :class:`LSTMEnsemble`
token sequences; the neural ensembles (PNAS's predictors) import torch only when they are fitted.
:func:`rank_correlation` reports how well predictions rank held-out architectures.

Example:
    >>> from optuna_nas import spaces
    >>> cells = [spaces.NASBench201Spec(ops=(op,) * 6) for op in spaces.NB201_OPS]
    >>> encoder = VectorEncoder().fit(cells)
    >>> predictor = TreeEnsemble(seed=0).fit(encoder.transform(cells), [10.0, 80.0, 85.0, 90.0, 70.0])
    >>> mean, spread = predictor.predict(encoder.transform(cells))
    >>> mean.shape == spread.shape == (5,)
    True
"""

from __future__ import annotations

from optuna_nas.predictors._architecture import Architecture
from optuna_nas.predictors._architecture import architecture_features
from optuna_nas.predictors._architecture import architecture_tokens
from optuna_nas.predictors._base import Predictor
from optuna_nas.predictors._base import SequencePredictor
from optuna_nas.predictors._base import VectorPredictor
from optuna_nas.predictors._correlation import rank_correlation
from optuna_nas.predictors._encoders import TokenEncoder
from optuna_nas.predictors._encoders import VectorEncoder
from optuna_nas.predictors._fitted import FittedPredictor
from optuna_nas.predictors._fitted import fit_on_architectures
from optuna_nas.predictors._neural import LSTMEnsemble
from optuna_nas.predictors._neural import MLPEnsemble
from optuna_nas.predictors._trees import TREE_MODELS
from optuna_nas.predictors._trees import TreeEnsemble

__all__ = [
    "TREE_MODELS",
    "Architecture",
    "FittedPredictor",
    "LSTMEnsemble",
    "MLPEnsemble",
    "Predictor",
    "SequencePredictor",
    "TokenEncoder",
    "TreeEnsemble",
    "VectorEncoder",
    "VectorPredictor",
    "architecture_features",
    "architecture_tokens",
    "fit_on_architectures",
    "rank_correlation",
]
