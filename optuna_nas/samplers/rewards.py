"""Reward functions: one number per finished trial, for samplers that learn from a scalar.

A reward function takes the trial's objective values and the study's directions and returns a
float where higher is better. Single-objective studies need none: the reward is the value, signed
by its direction. For several objectives, the default (:func:`first_objective`) is the first
objective signed by its direction; pass :func:`linear` or :func:`mnas` to trade accuracy against
cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from optuna.study import StudyDirection

RewardFunction = Callable[[Sequence[float], Sequence[StudyDirection]], float]


def _sign(direction: StudyDirection) -> float:
    return 1.0 if direction == StudyDirection.MAXIMIZE else -1.0


def first_objective(values: Sequence[float], directions: Sequence[StudyDirection]) -> float:
    """The first objective, negated if it is minimised: the default reward."""
    return _sign(directions[0]) * float(values[0])


def linear(weights: Sequence[float]) -> RewardFunction:
    """``sum(w_i * s_i * v_i)``, with ``s_i = +1`` for maximised and ``-1`` for minimised objectives.

    For ``(accuracy, params, flops)`` studies, ``linear([1.0, l1, l2])`` is
    ``accuracy - l1 * params - l2 * flops``.

    Args:
        weights: One non-negative weight per objective.

    Raises:
        ValueError: A weight is negative or not a finite number.
    """
    checked = [float(w) for w in weights]
    if not checked or any(not math.isfinite(w) or w < 0 for w in checked):
        raise ValueError(f"weights must be finite numbers >= 0, one per objective, got {list(weights)!r}.")

    def reward(values: Sequence[float], directions: Sequence[StudyDirection]) -> float:
        if len(values) != len(checked):
            raise ValueError(f"weights has {len(checked)} entries but the study has {len(values)} objectives.")
        return sum(w * _sign(d) * float(v) for w, d, v in zip(checked, directions, values))

    return reward


def mnas(target: float, *, cost_index: int = 2, accuracy_index: int = 0, exponent: float = -0.07) -> RewardFunction:
    """MnasNet's soft constraint (Tan et al., 2019): ``accuracy * (cost / target) ** exponent``.

    With the default exponent -0.07 (MnasNet's alpha = beta), a network at twice the target cost
    needs about 5 % more accuracy to earn the same reward.

    Args:
        target: The cost aimed at, in the unit of the cost objective (e.g. FLOPs).
        cost_index: Which objective is the cost (default 2: FLOPs in ``(accuracy, params, flops)``).
        accuracy_index: Which objective is the accuracy.
        exponent: The soft constraint's exponent (negative).

    Raises:
        ValueError: ``target`` is not positive or ``exponent`` is not negative.
    """
    if not target > 0:
        raise ValueError(f"target must be a positive cost, got {target!r}.")
    if not exponent < 0:
        raise ValueError(f"exponent must be negative, got {exponent!r}.")

    def reward(values: Sequence[float], directions: Sequence[StudyDirection]) -> float:
        cost = max(float(values[cost_index]), 1e-12)
        return float(values[accuracy_index]) * (cost / target) ** exponent

    return reward


__all__ = ["RewardFunction", "first_objective", "linear", "mnas"]
