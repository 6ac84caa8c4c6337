"""Reward functions: one number per finished trial, for samplers that learn from a scalar.

A reward function takes the trial's objective values and the study's directions and returns a
float where higher is better. Single-objective studies need none: the reward is the value, signed
by its direction. For several objectives, the default (:func:`first_objective`) is the first
objective signed by its direction; pass :func:`linear` or :func:`mnas` to trade accuracy against
cost.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence

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
    try:
        checked = [float(w) for w in weights]
    except (TypeError, ValueError):
        checked = []
    if not checked or any(not math.isfinite(w) or w < 0 for w in checked):
        raise ValueError(f"weights must be finite numbers >= 0, one per objective, got {weights!r}.")
    return _Linear(tuple(checked))


class _Linear:
    """``linear(weights)``: a class rather than a closure, so samplers holding it can be pickled."""

    def __init__(self, weights: tuple[float, ...]) -> None:
        self.weights = weights

    def __call__(self, values: Sequence[float], directions: Sequence[StudyDirection]) -> float:
        if len(values) != len(self.weights):
            raise ValueError(f"weights has {len(self.weights)} entries but the study has {len(values)} objectives.")
        return sum(w * _sign(d) * float(v) for w, d, v in zip(self.weights, directions, values, strict=True))

    def __repr__(self) -> str:
        return f"rewards.linear({list(self.weights)!r})"


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
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not target > 0 or not math.isfinite(target):
        raise ValueError(f"target must be a positive cost, got {target!r}.")
    if isinstance(exponent, bool) or not isinstance(exponent, (int, float)) or not exponent < 0:
        raise ValueError(f"exponent must be negative, got {exponent!r}.")
    for name, index in (("cost_index", cost_index), ("accuracy_index", accuracy_index)):
        if isinstance(index, bool) or not isinstance(index, int) or index < 0:
            raise ValueError(f"{name} must be an objective index >= 0, got {index!r}.")
    if cost_index == accuracy_index:
        raise ValueError(f"cost_index and accuracy_index must differ, got {cost_index!r} for both.")
    return _MNAS(float(target), cost_index, accuracy_index, float(exponent))


class _MNAS:
    """``mnas(target, ...)``: a class rather than a closure, so samplers holding it can be pickled."""

    def __init__(self, target: float, cost_index: int, accuracy_index: int, exponent: float) -> None:
        self.target, self.cost_index, self.accuracy_index, self.exponent = target, cost_index, accuracy_index, exponent

    def __call__(self, values: Sequence[float], directions: Sequence[StudyDirection]) -> float:
        if max(self.cost_index, self.accuracy_index) >= len(values):
            raise ValueError(
                f"mnas reward: cost_index {self.cost_index} / accuracy_index {self.accuracy_index} "
                f"out of range for a study of {len(values)} objectives."
            )
        cost = max(float(values[self.cost_index]), 1e-12)
        return float(values[self.accuracy_index]) * (cost / self.target) ** self.exponent

    def __repr__(self) -> str:
        return (
            f"rewards.mnas({self.target!r}, cost_index={self.cost_index}, "
            f"accuracy_index={self.accuracy_index}, exponent={self.exponent})"
        )


__all__ = ["RewardFunction", "first_objective", "linear", "mnas"]
