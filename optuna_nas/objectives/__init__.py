"""Objectives: train-and-measure on real data, ENAS's shared weights, and the tabular NAS-Bench-201 benchmark."""

from __future__ import annotations

from optuna_nas.objectives._common import METRIC_DIRECTIONS
from optuna_nas.objectives._image_classification import EarlyStop
from optuna_nas.objectives._image_classification import ImageClassification
from optuna_nas.objectives._image_classification import TrainingProgress
from optuna_nas.objectives._nasbench201 import DEFAULT_TABLE
from optuna_nas.objectives._nasbench201 import NB201_DATASETS
from optuna_nas.objectives._nasbench201 import NASBench201
from optuna_nas.objectives._shared_weights import OWNER_KEY
from optuna_nas.objectives._shared_weights import Controller
from optuna_nas.objectives._shared_weights import DerivedArchitecture
from optuna_nas.objectives._shared_weights import SharedWeights
from optuna_nas.objectives._shared_weights import derive

__all__ = [
    "DEFAULT_TABLE",
    "METRIC_DIRECTIONS",
    "NB201_DATASETS",
    "OWNER_KEY",
    "Controller",
    "DerivedArchitecture",
    "EarlyStop",
    "ImageClassification",
    "NASBench201",
    "SharedWeights",
    "TrainingProgress",
    "derive",
]
