"""Argument checks for the samplers: each error names the argument and shows the value."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_int(name: str, value: Any, *, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}.")
    return int(value)


def check_fraction(name: str, value: Any, *, low: float = 0.0, high: float = 1.0) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise ValueError(f"{name} must be a number in [{low}, {high}], got {value!r}.")
    return float(value)


def check_seed(seed: Any) -> int:
    """The seed, or a fresh one drawn from the OS when ``seed`` is ``None``."""
    if seed is None:
        return int(np.random.SeedSequence().entropy % (2**32))
    return check_int("seed", seed, minimum=0)
