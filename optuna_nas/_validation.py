"""Argument checks shared by every package: each error names the argument and shows the value."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any
from typing import cast

import numpy as np


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int (``>= minimum``, ``<= maximum`` when given), else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}.")
    if maximum is not None and value > maximum:
        raise ValueError(f"{name} must be at most {maximum}, got {value!r}.")
    return int(value)


def check_bool(name: str, value: Any) -> bool:
    """``value`` if it is ``True`` or ``False``, else a ``ValueError`` naming ``name``."""
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be True or False, got {value!r}.")
    return value


def check_number(
    name: str,
    value: Any,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """``value`` as a finite float within the bounds, else a ``ValueError`` naming ``name``."""
    ok = not isinstance(value, bool) and isinstance(value, (int, float, np.number)) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        if low is not None and high is not None:
            bounds = f" in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
        elif low is not None:
            bounds = f" {'>' if low_open else '>='} {low}"
        elif high is not None:
            bounds = f" {'<' if high_open else '<='} {high}"
        else:
            bounds = ""
        raise ValueError(f"{name} must be a finite number{bounds}, got {value!r}.")
    return float(value)


def check_one_of(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    """``value`` if it is one of ``allowed``, else a ``ValueError`` listing them."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {list(allowed)}, got {value!r}.")
    return value


def check_int_choices(name: str, values: Any, *, minimum: int = 1) -> tuple[int, ...]:
    """``values`` as a tuple of distinct ints ``>= minimum``, else a ``ValueError`` naming ``name``."""
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or len(values) == 0:
        raise ValueError(f"{name} must be a non-empty sequence of integers, got {values!r}.")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must hold integers >= {minimum}, got {values!r}.")
    if len(set(values)) != len(values):
        raise ValueError(f"{name} must not repeat a value, got {values!r}.")
    return tuple(values)


def check_seed(seed: Any) -> int:
    """The seed, or a fresh one drawn from the operating system when ``seed`` is ``None``."""
    if seed is None:
        # Without an entropy argument, SeedSequence draws an int from the operating system.
        return int(cast(int, np.random.SeedSequence().entropy) % (2**32))
    return check_int("seed", seed, minimum=0)


def check_finite_array(name: str, value: Any, *, ndim: int) -> np.ndarray:
    """``value`` as a float64 array of ``ndim`` dimensions and finite entries, else a ``ValueError``
    naming ``name`` and showing the start of the value.
    """
    shown = repr(value)
    shown = shown if len(shown) <= 200 else shown[:200] + "..."
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a {ndim}-D array of numbers, got {shown}.") from None
    if array.ndim != ndim or not np.isfinite(array).all():
        raise ValueError(f"{name} must be a {ndim}-D array of finite numbers, got shape {array.shape}: {shown}.")
    return array
