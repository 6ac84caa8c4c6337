"""Networks from specs: ``build_model(spec, input_shape=..., num_classes=...)``, the op registry, and
supernets that share weights among every architecture of a space (``build_supernet(space, ...)``).
"""

from __future__ import annotations

from optuna_nas.models import _cell  # noqa: F401  (registers the cell builder)
from optuna_nas.models import _chain  # noqa: F401  (registers the chain builder)
from optuna_nas.models import _dag  # noqa: F401  (registers the NAS-Bench-101 builder and ops)
from optuna_nas.models import _nasbench201  # noqa: F401  (registers the NAS-Bench-201 builder)
from optuna_nas.models._init import initialize_parameters
from optuna_nas.models._ops import available_ops
from optuna_nas.models._ops import create_op
from optuna_nas.models._ops import register_op
from optuna_nas.models._registry import available_builders
from optuna_nas.models._registry import build_model
from optuna_nas.models._registry import register_builder
from optuna_nas.models._supernet import CellSuperNetwork
from optuna_nas.models._supernet import ChainSuperNetwork
from optuna_nas.models._supernet import SuperNetwork
from optuna_nas.models._supernet import available_supernets
from optuna_nas.models._supernet import build_supernet
from optuna_nas.models._supernet import register_supernet

__all__ = [
    "CellSuperNetwork",
    "ChainSuperNetwork",
    "SuperNetwork",
    "available_builders",
    "available_ops",
    "available_supernets",
    "build_model",
    "build_supernet",
    "create_op",
    "initialize_parameters",
    "register_builder",
    "register_op",
    "register_supernet",
]
