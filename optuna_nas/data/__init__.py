"""Named image-classification datasets, offline first: ``load("mnist5k")``."""

from __future__ import annotations

from optuna_nas.data._dataset import ImageDataset
from optuna_nas.data._load import available_datasets
from optuna_nas.data._load import load

__all__ = ["ImageDataset", "available_datasets", "load"]
