"""Samplers by name: Optuna's yardsticks and the project's NAS controllers, as the command names them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna

from optuna_nas._registry import Registry

SamplerFactory = Callable[..., optuna.samplers.BaseSampler]
_SAMPLERS: Registry[SamplerFactory] = Registry("sampler")


def register_sampler(name: str, factory: SamplerFactory, *, replace: bool = False) -> SamplerFactory:
    """Make ``factory(seed=..., **options)`` available to :func:`create_sampler` as ``name``.

    Raises:
        ValueError: ``name`` is taken by another factory and ``replace`` is false, or ``factory``
            is not callable.
    """
    if not callable(factory):
        raise ValueError(f"factory: sampler {name!r} needs a callable factory(seed=..., **options), got {factory!r}.")
    return _SAMPLERS.register(name, factory, replace=replace)


def available_samplers(pattern: str = "*") -> list[str]:
    """Every name :func:`create_sampler` accepts that matches ``pattern`` (shell-style), sorted."""
    return _SAMPLERS.names(pattern)


def create_sampler(name: str, *, seed: int | None = None, **options: Any) -> optuna.samplers.BaseSampler:
    """Make the sampler called ``name``, seeded with ``seed``.

    ``options`` are passed to the project's samplers that take them (for example ``state`` for
    MetaQNN); Optuna's own samplers ignore them.

    Raises:
        ValueError: ``name`` is unknown; the message lists the available ones.
    """
    return _SAMPLERS.get(name)(seed=seed, **options)


register_sampler("random", lambda *, seed, **_: optuna.samplers.RandomSampler(seed=seed))
register_sampler("tpe", lambda *, seed, **_: optuna.samplers.TPESampler(seed=seed))
register_sampler("nsga2", lambda *, seed, **_: optuna.samplers.NSGAIISampler(seed=seed))
