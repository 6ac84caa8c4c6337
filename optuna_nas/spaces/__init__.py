"""Search spaces: architectures as define-by-run ``trial.suggest_*`` calls, and their specs.

Every space and spec type is registered where it is defined (:func:`register_space`,
:func:`register_spec`), and so is every op name a cell may choose (:func:`register_op_name`):
:func:`create_space`, :func:`spec_from_dict` and the cell spaces' op checks see the built-in ones
and yours alike, without importing torch.
"""

from __future__ import annotations

from optuna_nas.spaces._base import ArchitectureGraph
from optuna_nas.spaces._base import ArchitectureSpec
from optuna_nas.spaces._base import Decider
from optuna_nas.spaces._base import DistributionDecider
from optuna_nas.spaces._base import Space
from optuna_nas.spaces._cell import NUM_CELL_INPUTS
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
from optuna_nas.spaces._nasbench201 import NB201_EDGES
from optuna_nas.spaces._nasbench201 import NB201_OPS
from optuna_nas.spaces._nasbench201 import NASBench201Space
from optuna_nas.spaces._nasbench201 import NASBench201Spec
from optuna_nas.spaces._registry import available_op_names
from optuna_nas.spaces._registry import available_spaces
from optuna_nas.spaces._registry import check_op_names
from optuna_nas.spaces._registry import create_space
from optuna_nas.spaces._registry import register_op_name
from optuna_nas.spaces._registry import register_space
from optuna_nas.spaces._registry import register_spec
from optuna_nas.spaces._registry import spec_from_dict

__all__ = [
    "NB101_OPS",
    "NB201_EDGES",
    "NB201_OPS",
    "NUM_CELL_INPUTS",
    "PNAS_OPS",
    "ArchitectureGraph",
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
    "DistributionDecider",
    "NASBench201Space",
    "NASBench201Spec",
    "Space",
    "available_op_names",
    "available_spaces",
    "check_op_names",
    "conv_output_size",
    "create_space",
    "pool_output_size",
    "register_op_name",
    "register_space",
    "register_spec",
    "representation_bucket",
    "spec_from_dict",
]
