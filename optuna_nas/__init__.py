"""Neural architecture search as Optuna samplers, spaces and objectives.

Subpackages: :mod:`~optuna_nas.spaces` (architectures as define-by-run decisions),
:mod:`~optuna_nas.models` (spec to network), :mod:`~optuna_nas.data` (offline-first datasets),
:mod:`~optuna_nas.metrics` (params, FLOPs, latency), :mod:`~optuna_nas.objectives` (train and
measure; NAS-Bench-201), :mod:`~optuna_nas.samplers` (the NAS controllers), and the module
:mod:`~optuna_nas.storages` (a gRPC storage proxy client that keeps param order). Importing this package
does not import torch; the subpackages that need it import it when they are first used.
"""

from __future__ import annotations

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("optuna-nas")  # one source of truth: pyproject.toml
except _metadata.PackageNotFoundError:  # run from a source tree that was never installed
    __version__ = "0+unknown"
__all__ = ["__version__"]
