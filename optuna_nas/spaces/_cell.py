"""PNAS / NASNet cells of B blocks (Liu et al., 2018; Zoph et al., 2018)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from optuna_nas._validation import check_int
from optuna_nas.spaces._base import ArchitectureGraph
from optuna_nas.spaces._base import ArchitectureSpec
from optuna_nas.spaces._base import Decider
from optuna_nas.spaces._base import Space
from optuna_nas.spaces._registry import check_op_names
from optuna_nas.spaces._registry import register_op_name
from optuna_nas.spaces._registry import register_space
from optuna_nas.spaces._registry import register_spec

#: The 8-op set of PNAS, by the names the model builder's op registry knows them by.
PNAS_OPS = (
    "sep_conv_3x3",
    "sep_conv_5x5",
    "sep_conv_7x7",
    "conv_1x7_7x1",
    "identity",
    "avg_pool_3x3",
    "max_pool_3x3",
    "dil_conv_3x3",
)

for _op in PNAS_OPS:
    register_op_name(_op)

#: Inputs 0 and 1 of every block are the outputs of the cells two back and one back.
NUM_CELL_INPUTS = 2


@dataclasses.dataclass(frozen=True)
class CellBlock:
    """One block: ``op_a(input_a) + op_b(input_b)``.

    Inputs index the cell's hidden states: 0 and 1 are the two previous cells' outputs, ``2 + j`` is
    block ``j`` of this cell.
    """

    input_a: int
    op_a: str
    input_b: int
    op_b: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@register_spec
@dataclasses.dataclass(frozen=True)
class CellSpec(ArchitectureSpec):
    """A cell and the macro skeleton it is stacked in.

    The network is a stem, then ``stages`` stages of ``cells_per_stage`` normal cells with a
    stride-2 reduction cell (the same cell, reducing) between consecutive stages; channels start at
    ``channels`` and double at every reduction. The cell's output concatenates the blocks no other
    block consumes.
    """

    blocks: tuple[CellBlock, ...]
    cells_per_stage: int = 1
    stages: int = 2
    channels: int = 16
    space = "cell"

    def __post_init__(self) -> None:
        if len(self.blocks) == 0:
            raise ValueError("blocks must hold at least one block, got ().")
        check_int("cells_per_stage", self.cells_per_stage, minimum=1)
        check_int("stages", self.stages, minimum=1)
        check_int("channels", self.channels, minimum=1)
        for index, block in enumerate(self.blocks):
            for field in ("input_a", "input_b"):
                value = getattr(block, field)
                if not isinstance(value, int) or not 0 <= value < NUM_CELL_INPUTS + index:
                    raise ValueError(
                        f"blocks[{index}].{field} must be in [0, {NUM_CELL_INPUTS + index - 1}], got {value!r}."
                    )

    @property
    def unused_blocks(self) -> list[int]:
        """Indices of the blocks whose output no later block takes: the cell's output."""
        used = {b.input_a for b in self.blocks} | {b.input_b for b in self.blocks}
        return [j for j in range(len(self.blocks)) if NUM_CELL_INPUTS + j not in used]

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "blocks": [block.to_dict() for block in self.blocks],
            "cells_per_stage": self.cells_per_stage,
            "stages": self.stages,
            "channels": self.channels,
        }

    def summary(self) -> str:
        blocks = "; ".join(f"{b.op_a}({b.input_a}) + {b.op_b}({b.input_b})" for b in self.blocks)
        return f"{len(self.blocks)} blocks [{blocks}], {self.stages}x{self.cells_per_stage} cells, C={self.channels}"

    def graph(self) -> ArchitectureGraph:
        nodes = ["cell k-2", "cell k-1"] + [f"block {j}" for j in range(len(self.blocks))] + ["output"]
        edges = []
        for j, block in enumerate(self.blocks):
            edges.append((block.input_a, NUM_CELL_INPUTS + j, block.op_a))
            edges.append((block.input_b, NUM_CELL_INPUTS + j, block.op_b))
        edges += [(NUM_CELL_INPUTS + j, len(nodes) - 1, "") for j in self.unused_blocks]
        title = f"cell of {len(self.blocks)} blocks, {self.stages} stages x {self.cells_per_stage} cells"
        return ArchitectureGraph(nodes=tuple(nodes), edges=tuple(edges), title=title)

    def canonical_dict(self) -> dict[str, Any]:
        # The two halves of a block are summed, so their order does not matter.
        data = self.to_dict()
        data["blocks"] = [sorted([[b.input_a, b.op_a], [b.input_b, b.op_b]]) for b in self.blocks]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CellSpec:
        return cls(
            blocks=tuple(CellBlock(**block) for block in data["blocks"]),
            cells_per_stage=data.get("cells_per_stage", 1),
            stages=data.get("stages", 2),
            channels=data.get("channels", 16),
        )


@register_space
class CellSpace(Space):
    """PNAS cells: ``num_blocks`` blocks, each summing two ops applied to two chosen inputs.

    Decisions, in order: ``num_blocks`` (an int in ``[min_blocks, max_blocks]``, so progressive
    search can grow it), then for each block ``b``: ``block_b/input_a``, ``block_b/op_a``,
    ``block_b/input_b``, ``block_b/op_b``. Block ``b`` may take the two previous cells' outputs
    (0, 1) or any earlier block (``2 + j``).

    Args:
        max_blocks: Most blocks in a cell (PNAS uses 5).
        min_blocks: Fewest blocks in a cell.
        ops: Op names to choose from, among :func:`~optuna_nas.spaces.available_op_names` (the
            built-in ops and those added with :func:`optuna_nas.models.register_op`); the default
            is the 8-op PNAS set.
        cells_per_stage: Normal cells stacked per stage (PNAS's N).
        stages: Stages, separated by stride-2 reduction cells.
        channels: Channels of the first stage; doubled at each reduction.

    Raises:
        ValueError: An argument is out of range or an op is unknown; the message names it.
    """

    name = "cell"

    def __init__(
        self,
        *,
        max_blocks: int = 5,
        min_blocks: int = 1,
        ops: Sequence[str] = PNAS_OPS,
        cells_per_stage: int = 1,
        stages: int = 2,
        channels: int = 16,
    ) -> None:
        self.max_blocks = check_int("max_blocks", max_blocks, minimum=1)
        self.min_blocks = check_int("min_blocks", min_blocks, minimum=1)
        if self.min_blocks > self.max_blocks:
            raise ValueError(f"min_blocks must be <= max_blocks={max_blocks}, got {min_blocks!r}.")
        self.ops = check_op_names(ops)
        self.cells_per_stage = check_int("cells_per_stage", cells_per_stage, minimum=1)
        self.stages = check_int("stages", stages, minimum=1)
        self.channels = check_int("channels", channels, minimum=1)

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.name,
            "max_blocks": self.max_blocks,
            "min_blocks": self.min_blocks,
            "ops": list(self.ops),
            "cells_per_stage": self.cells_per_stage,
            "stages": self.stages,
            "channels": self.channels,
        }

    def decide(self, decider: Decider) -> CellSpec:
        num_blocks = decider.integer("num_blocks", self.min_blocks, self.max_blocks)
        blocks = []
        for b in range(num_blocks):
            inputs = list(range(NUM_CELL_INPUTS + b))
            prefix = f"block_{b}"
            blocks.append(
                CellBlock(
                    input_a=decider.categorical(f"{prefix}/input_a", inputs),
                    op_a=decider.categorical(f"{prefix}/op_a", self.ops),
                    input_b=decider.categorical(f"{prefix}/input_b", inputs),
                    op_b=decider.categorical(f"{prefix}/op_b", self.ops),
                )
            )
        return CellSpec(
            blocks=tuple(blocks),
            cells_per_stage=self.cells_per_stage,
            stages=self.stages,
            channels=self.channels,
        )
