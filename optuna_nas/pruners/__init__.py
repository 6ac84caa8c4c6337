"""Pruners: stop a trial early when its learning curve says it will not win.

:class:`LearningCurvePruner` (Baker et al. 2017) predicts a trial's final accuracy from its first
epochs and its architecture, trained on the study's complete trials, and prunes when the prediction
is confidently below the best. It is an Optuna pruner for single-objective studies
(``optuna.create_study(pruner=LearningCurvePruner())``), and ``ImageClassification(...,
curve_pruner=LearningCurvePruner())`` asks it in multi-objective ones.
"""

from __future__ import annotations

from optuna_nas.pruners._learning_curve import CurveVerdict
from optuna_nas.pruners._learning_curve import LearningCurvePruner

__all__ = ["CurveVerdict", "LearningCurvePruner"]
