"""Objectives: train-and-measure on real data, and the tabular NAS-Bench-201 benchmark."""

from __future__ import annotations

from optuna_nas.objectives._image_classification import EarlyStop
from optuna_nas.objectives._image_classification import ImageClassification
from optuna_nas.objectives._image_classification import METRIC_DIRECTIONS

__all__ = ["EarlyStop", "ImageClassification", "METRIC_DIRECTIONS"]
