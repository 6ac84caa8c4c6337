"""Cell specs as networks: PNAS / NASNet cells stacked in stages with reduction cells between."""

from __future__ import annotations

import torch
from torch import nn

from optuna_nas.models._ops import FactorizedReduce
from optuna_nas.models._ops import ReLUConvBN
from optuna_nas.models._ops import create_op
from optuna_nas.models._registry import register_builder
from optuna_nas.spaces import NUM_CELL_INPUTS
from optuna_nas.spaces import CellSpec


def cell_layout(stages: int, cells_per_stage: int, channels: int) -> list[tuple[int, bool, bool]]:
    """``(channels, reduction, reduction_prev)`` of every cell of the skeleton, in order: ``stages``
    stages of ``cells_per_stage`` normal cells, a reduction cell opening every stage after the first
    and doubling the channels.
    """
    layout = []
    reduction_prev = False
    for stage in range(stages):
        kinds = [False] * cells_per_stage
        if stage > 0:
            channels *= 2
            kinds = [True, *kinds]
        for reduction in kinds:
            layout.append((channels, reduction, reduction_prev))
            reduction_prev = reduction
    return layout


class Cell(nn.Module):
    """One cell: its blocks over the two previous cells' outputs, concatenating the unused ones."""

    def __init__(
        self,
        spec: CellSpec,
        c_prev_prev: int,
        c_prev: int,
        channels: int,
        *,
        reduction: bool,
        reduction_prev: bool,
    ) -> None:
        super().__init__()
        self.preprocess0 = (
            FactorizedReduce(c_prev_prev, channels) if reduction_prev else ReLUConvBN(c_prev_prev, channels, 1)
        )
        self.preprocess1 = ReLUConvBN(c_prev, channels, 1)
        self.blocks = spec.blocks
        self.ops = nn.ModuleList()
        for block in spec.blocks:
            for source, op in ((block.input_a, block.op_a), (block.input_b, block.op_b)):
                stride = 2 if reduction and source < NUM_CELL_INPUTS else 1
                self.ops.append(create_op(op, channels, stride))
        self.outputs = [NUM_CELL_INPUTS + j for j in spec.unused_blocks]
        self.out_channels = channels * len(self.outputs)

    def forward(self, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        states = [self.preprocess0(s0), self.preprocess1(s1)]
        for index, block in enumerate(self.blocks):
            a = self.ops[2 * index](states[block.input_a])
            b = self.ops[2 * index + 1](states[block.input_b])
            states.append(a + b)
        return torch.cat([states[i] for i in self.outputs], dim=1)


class CellNetwork(nn.Module):
    """Stem, stages of normal cells with reduction cells between them, pooling, classifier."""

    def __init__(self, spec: CellSpec, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        channels = spec.channels
        self.stem = nn.Sequential(
            nn.Conv2d(input_shape[0], channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels)
        )
        c_prev_prev, c_prev = channels, channels
        self.cells = nn.ModuleList()
        for cell_channels, reduction, reduction_prev in cell_layout(spec.stages, spec.cells_per_stage, channels):
            cell = Cell(spec, c_prev_prev, c_prev, cell_channels, reduction=reduction, reduction_prev=reduction_prev)
            self.cells.append(cell)
            c_prev_prev, c_prev = c_prev, cell.out_channels
        self.head = nn.Sequential(nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.classifier = nn.Linear(c_prev, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        logits: torch.Tensor = self.classifier(self.head(s1))
        return logits


@register_builder(CellSpec)
def build_cell_network(spec: CellSpec, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return CellNetwork(spec, input_shape, num_classes)
