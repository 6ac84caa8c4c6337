"""How well a predictor ranks: Spearman's and Kendall's rank correlations."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from optuna_nas._validation import check_finite_array


def rank_correlation(y_true: Any, y_pred: Any) -> dict[str, float]:
    """Spearman's rho and Kendall's tau-b between true and predicted scores (``scipy.stats``).

    A search needs its predictor to order architectures, not to hit their scores, so these are the
    figures predictors are compared by. Either is NaN when ``y_true`` or ``y_pred`` is constant.

    Args:
        y_true: The measured scores.
        y_pred: The predicted scores, one per measured one.

    Returns:
        ``{"spearman": rho, "kendall": tau}``.

    Raises:
        ValueError: The two differ in length, hold fewer than 2 values, or hold a value that is
            not a finite number; the message names the argument.

    Example:
        >>> result = rank_correlation([1, 2, 3, 4], [10, 20, 40, 30])
        >>> {name: round(value, 3) for name, value in result.items()}
        {'spearman': 0.8, 'kendall': 0.667}
    """
    from scipy import stats  # type: ignore[import-untyped]

    true = _scores("y_true", y_true)
    pred = _scores("y_pred", y_pred)
    if len(true) != len(pred):
        raise ValueError(f"y_pred must hold one value per value of y_true ({len(true)}), got {len(pred)}.")
    if len(true) < 2:
        raise ValueError(f"y_true must hold at least 2 values, got {len(true)}.")
    with warnings.catch_warnings():
        # A constant input has no ranking: scipy warns and returns NaN, which is the answer.
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        spearman = stats.spearmanr(true, pred)[0]
        kendall = stats.kendalltau(true, pred)[0]
    return {"spearman": float(spearman), "kendall": float(kendall)}


def _scores(name: str, values: Any) -> np.ndarray:
    return check_finite_array(name, values, ndim=1)
