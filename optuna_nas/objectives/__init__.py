"""Objectives: train-and-measure on real data, and the tabular NAS-Bench-201 benchmark."""

from __future__ import annotations

from optuna_nas.objectives._image_classification import EarlyStop
from optuna_nas.objectives._image_classification import ImageClassification
from optuna_nas.objectives._image_classification import METRIC_DIRECTIONS
from optuna_nas.objectives._nasbench201 import DEFAULT_TABLE
from optuna_nas.objectives._nasbench201 import NASBench201
from optuna_nas.objectives._nasbench201 import NB201_DATASETS

__all__ = ["DEFAULT_TABLE", "EarlyStop", "ImageClassification", "METRIC_DIRECTIONS", "NASBench201", "NB201_DATASETS"]
