"""Samplers by name: Optuna's yardsticks and the project's NAS controllers, as the command names them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

SamplerFactory = Callable[..., optuna.samplers.BaseSampler]
_FACTORIES: dict[str, SamplerFactory] = {
    "random": lambda *, seed, **_: optuna.samplers.RandomSampler(seed=seed),
    "tpe": lambda *, seed, **_: optuna.samplers.TPESampler(seed=seed),
    "nsga2": lambda *, seed, **_: optuna.samplers.NSGAIISampler(seed=seed),
}


def register_sampler(name: str, factory: SamplerFactory) -> None:
    """Make ``factory(seed=..., **options)`` available as ``name``."""
    _FACTORIES[name] = factory


def available_samplers() -> list[str]:
    """Every name :func:`create_sampler` accepts."""
    return list(_FACTORIES)


def create_sampler(name: str, *, seed: int | None = None, **options: Any) -> optuna.samplers.BaseSampler:
    """Make the sampler called ``name``, seeded with ``seed``.

    ``options`` are passed to the project's samplers that take them (for example ``state`` for
    MetaQNN); Optuna's own samplers ignore them.

    Raises:
        ValueError: ``name`` is unknown; the message lists the available ones.
    """
    if name not in _FACTORIES:
        raise ValueError(f"sampler must be one of {available_samplers()}, got {name!r}.")
    return _FACTORIES[name](seed=seed, **options)
