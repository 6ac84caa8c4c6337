"""Experiment tracking: MLflow runs for studies and trials."""

from __future__ import annotations

from optuna_nas.tracking._mlflow import MLflowTracker

__all__ = ["MLflowTracker"]
