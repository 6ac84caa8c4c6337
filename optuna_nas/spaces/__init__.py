"""Search spaces: architectures as define-by-run ``trial.suggest_*`` calls, and their specs."""

from __future__ import annotations

from typing import Any

from optuna_nas.spaces._base import ArchitectureSpec
from optuna_nas.spaces._base import Decider
from optuna_nas.spaces._base import Space
from optuna_nas.spaces._cell import PNAS_OPS
from optuna_nas.spaces._cell import CellBlock
from optuna_nas.spaces._cell import CellSpace
from optuna_nas.spaces._cell import CellSpec
from optuna_nas.spaces._chain import ChainLayer
from optuna_nas.spaces._chain import ChainSpace
from optuna_nas.spaces._chain import ChainSpec
from optuna_nas.spaces._chain import conv_output_size
from optuna_nas.spaces._chain import pool_output_size
from optuna_nas.spaces._chain import representation_bucket
from optuna_nas.spaces._dag import NB101_OPS
from optuna_nas.spaces._dag import DAGCellSpace
from optuna_nas.spaces._dag import DAGCellSpec
from optuna_nas.spaces._nasbench201 import NB201_OPS
from optuna_nas.spaces._nasbench201 import NASBench201Space
from optuna_nas.spaces._nasbench201 import NASBench201Spec

_SPEC_TYPES = {cls.space: cls for cls in (ChainSpec, CellSpec, NASBench201Spec, DAGCellSpec)}
_SPACE_TYPES = {cls.name: cls for cls in (ChainSpace, CellSpace, NASBench201Space, DAGCellSpace)}


def spec_from_dict(data: dict[str, Any]) -> ArchitectureSpec:
    """Rebuild a spec from :meth:`ArchitectureSpec.to_dict` output.

    Raises:
        ValueError: ``data`` names no known space.
    """
    kind = data.get("space") if isinstance(data, dict) else None
    if kind not in _SPEC_TYPES:
        raise ValueError(f"data['space'] must be one of {sorted(_SPEC_TYPES)}, got {kind!r}.")
    return _SPEC_TYPES[kind].from_dict(data)


def create_space(name: str, **kwargs: Any) -> Space:
    """Make a space by its short name (``chain``, ``cell``, ``nb201`` or ``dag``).

    Raises:
        ValueError: ``name`` is not a known space.
    """
    if name not in _SPACE_TYPES:
        raise ValueError(f"space must be one of {sorted(_SPACE_TYPES)}, got {name!r}.")
    return _SPACE_TYPES[name](**kwargs)


__all__ = [
    "NB101_OPS",
    "NB201_OPS",
    "PNAS_OPS",
    "ArchitectureSpec",
    "CellBlock",
    "CellSpace",
    "CellSpec",
    "ChainLayer",
    "ChainSpace",
    "ChainSpec",
    "DAGCellSpace",
    "DAGCellSpec",
    "Decider",
    "NASBench201Space",
    "NASBench201Spec",
    "Space",
    "conv_output_size",
    "create_space",
    "pool_output_size",
    "representation_bucket",
    "spec_from_dict",
]
