"""Reward functions: one number per finished trial, for samplers that learn from a scalar.

A reward function takes the trial's objective values and the study's directions and returns a
float where higher is better. Single-objective studies need none: the reward is the value, signed
by its direction. For several objectives, the project's samplers trade the objectives off by
default (each says how in its docstring: evolution selects parents along the Pareto front, the
learning ones use :func:`dominance`); pass
:func:`first_objective` to steer on the first objective alone, or :func:`linear` or :func:`mnas` to
trade accuracy against cost with weights or a target.

A reward may also depend on the trials before it (:class:`RelativeReward`, such as
:func:`dominance`): the sampler settles it in trial-number order, so it is the same in every
process whatever order the trials finished in.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from collections.abc import Sequence
from typing import Protocol
from typing import runtime_checkable

import numpy as np
from optuna.study import StudyDirection

from optuna_nas._validation import check_number

RewardFunction = Callable[[Sequence[float], Sequence[StudyDirection]], float]


@runtime_checkable
class RelativeReward(Protocol):
    """A reward that depends on the trials before it, settled in trial-number order.

    Calling it with a trial's values alone gives its reward when no trial came before;
    :meth:`relative_to` gives it against the values of the feasible complete trials numbered below
    it.
    """

    def __call__(self, values: Sequence[float], directions: Sequence[StudyDirection]) -> float: ...

    def relative_to(self, values: Sequence[float], directions: Sequence[StudyDirection], earlier: np.ndarray) -> float:
        """The reward of ``values`` given ``earlier``, an ``(n, objectives)`` array of the values of
        the feasible complete trials numbered below this one (``n`` may be 0).
        """
        ...


def _sign(direction: StudyDirection) -> float:
    return 1.0 if direction == StudyDirection.MAXIMIZE else -1.0


def first_objective(values: Sequence[float], directions: Sequence[StudyDirection]) -> float:
    """The first objective, negated if it is minimised: the default reward."""
    return _sign(directions[0]) * float(values[0])


def dominance(*, primary_weight: float = 0.5) -> RewardFunction:
    """A Pareto-rank reward against the trials before it, free of units and weights to choose.

    ``(1 - primary_weight) * (share of the earlier feasible complete trials that do not dominate the
    trial) + primary_weight * (share of them the trial matches or beats in the first objective)``.
    With no earlier trial it is 1. A trial no earlier one dominates earns the first part whole, so
    the cheapest network is rewarded as well as the most accurate; the second part keeps the first
    objective (accuracy, in this package's objectives) the main pull. Used by the project's learning
    samplers when a study has several objectives and no reward is given. ``primary_weight=0.5`` was
    chosen for MetaQNN on NAS-Bench-201's validation signal (CIFAR-100, ImageNet16-120): pure
    dominance (0) found less accurate cells and no larger hypervolume.

    Args:
        primary_weight: The weight of the first objective's rank, in [0, 1].

    Raises:
        ValueError: ``primary_weight`` is outside [0, 1].

    Example:
        >>> import numpy as np
        >>> from optuna.study import StudyDirection
        >>> up, down = StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE
        >>> earlier = np.array([[0.9, 10.0], [0.8, 5.0]])
        >>> # dominated by the first, more accurate than the second
        >>> dominance(primary_weight=0.0).relative_to([0.85, 20.0], [up, down], earlier)
        0.5
        >>> dominance().relative_to([0.85, 20.0], [up, down], earlier)
        0.5
    """
    weight = check_number("primary_weight", primary_weight, low=0.0, high=1.0)
    return _Dominance(weight)


class _Dominance:
    """``dominance(...)``: a class rather than a closure, so samplers holding it can be pickled."""

    def __init__(self, primary_weight: float) -> None:
        self.primary_weight = primary_weight

    def __call__(self, values: Sequence[float], directions: Sequence[StudyDirection]) -> float:
        return 1.0

    def relative_to(self, values: Sequence[float], directions: Sequence[StudyDirection], earlier: np.ndarray) -> float:
        if len(earlier) == 0:
            return 1.0
        signs = np.array([_sign(d) for d in directions])
        gains = np.asarray(values, dtype=float) * signs
        others = np.asarray(earlier, dtype=float) * signs
        dominating = np.all(others >= gains, axis=1) & np.any(others > gains, axis=1)
        undominated = 1.0 - float(np.count_nonzero(dominating)) / len(earlier)
        beaten = float(np.count_nonzero(others[:, 0] <= gains[0])) / len(earlier)
        return (1.0 - self.primary_weight) * undominated + self.primary_weight * beaten

    def __repr__(self) -> str:
        return f"rewards.dominance(primary_weight={self.primary_weight})"


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
        return float(float(values[self.accuracy_index]) * (cost / self.target) ** self.exponent)

    def __repr__(self) -> str:
        return (
            f"rewards.mnas({self.target!r}, cost_index={self.cost_index}, "
            f"accuracy_index={self.accuracy_index}, exponent={self.exponent})"
        )


def from_string(text: str) -> RewardFunction:
    """A reward from its command-line form: ``first``, ``dominance``, ``linear:W1,W2,...`` or
    ``mnas:TARGET``.

    Example:
        >>> from_string("linear:1,0,1e-9")
        rewards.linear([1.0, 0.0, 1e-09])

    Raises:
        ValueError: ``text`` is none of these forms, or its numbers are out of range.
    """
    name, colon, argument = str(text).partition(":")
    try:
        if name == "first" and not colon:
            return first_objective
        if name == "dominance" and not colon:
            return dominance()
        if name == "linear" and argument:
            return linear([float(w) for w in argument.split(",")])
        if name == "mnas" and argument:
            return mnas(float(argument))
    except ValueError as error:
        raise ValueError(f"reward {text!r}: {error}") from None
    raise ValueError(f"reward must be first, dominance, linear:W1,W2,... or mnas:TARGET, got {text!r}.")


__all__ = ["RelativeReward", "RewardFunction", "dominance", "first_objective", "from_string", "linear", "mnas"]
