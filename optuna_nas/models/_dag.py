"""NAS-Bench-101 cells as networks: the benchmark's skeleton and channel rule (Ying et al., 2019)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from optuna_nas.models._ops import create_op
from optuna_nas.models._ops import register_op
from optuna_nas.models._registry import register_builder
from optuna_nas.spaces import DAGCellSpec


class ConvBNReLU(nn.Sequential):
    """Convolution ('same' padding, no bias), batch norm, ReLU: NAS-Bench-101's conv ops and projections."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, bias=False),
            nn.BatchNorm2d(c_out),
            nn.ReLU(inplace=False),
        )


register_op("conv3x3-bn-relu")(lambda channels, stride: ConvBNReLU(channels, channels, 3, stride))
register_op("conv1x1-bn-relu")(lambda channels, stride: ConvBNReLU(channels, channels, 1, stride))
register_op("maxpool3x3")(lambda channels, stride: nn.MaxPool2d(3, stride=stride, padding=1))


def vertex_channels(input_channels: int, output_channels: int, matrix: Sequence[Sequence[int]]) -> list[int]:
    """The channels of every vertex of a pruned cell, by NAS-Bench-101's rule.

    The output's channels are split evenly among the inner vertices feeding it (the remainder one
    each to the first of them); every other inner vertex takes the largest count among the inner
    vertices it feeds. The input keeps ``input_channels``.
    """
    n = len(matrix)
    channels = [0] * n
    channels[0], channels[n - 1] = input_channels, output_channels
    feeding = [v for v in range(1, n - 1) if matrix[v][n - 1]]
    if not feeding:
        return channels
    share, remainder = divmod(output_channels, len(feeding))
    for rank, v in enumerate(feeding):
        channels[v] = share + (1 if rank < remainder else 0)
    for v in range(n - 2, 0, -1):
        if not matrix[v][n - 1]:
            channels[v] = max(channels[w] for w in range(v + 1, n - 1) if matrix[v][w])
    return channels


class DAGCell(nn.Module):
    """One NAS-Bench-101 cell (module) mapping ``c_in`` to ``c_out`` channels.

    An inner vertex sums its inputs and applies its op: inputs from inner vertices are cut to the
    vertex's channels (they have at most one more), the cell's input is projected to them with a
    1x1 conv-BN-ReLU. The output concatenates the inner vertices feeding it and adds a projection
    of the input if the input feeds it (the projection alone when no inner vertex does).
    """

    def __init__(self, spec: DAGCellSpec, c_in: int, c_out: int) -> None:
        super().__init__()
        spec = spec.pruned()
        matrix = spec.matrix
        n = len(matrix)
        self.vertex_channels = vertex_channels(c_in, c_out, matrix)
        self.sources = [[u for u in range(1, v) if matrix[u][v]] for v in range(n)]
        self.projected = [v for v in range(1, n) if matrix[0][v]]
        self.projections = nn.ModuleDict({str(v): ConvBNReLU(c_in, self.vertex_channels[v], 1) for v in self.projected})
        self.ops = nn.ModuleDict({str(v): create_op(spec.ops[v], self.vertex_channels[v], 1) for v in range(1, n - 1)})
        self.concatenated = [v for v in range(1, n - 1) if matrix[v][n - 1]]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = len(self.vertex_channels)
        tensors = [x]
        for v in range(1, n - 1):
            width = self.vertex_channels[v]
            terms = [tensors[u][:, :width] for u in self.sources[v]]
            if v in self.projected:
                terms.append(self.projections[str(v)](x))
            total = terms[0]
            for term in terms[1:]:
                total = total + term
            tensors.append(self.ops[str(v)](total))
        if not self.concatenated:
            out: torch.Tensor = self.projections[str(n - 1)](x)
            return out
        out = torch.cat([tensors[v] for v in self.concatenated], dim=1)
        if n - 1 in self.projected:
            out = out + self.projections[str(n - 1)](x)
        return out


class DAGCellNetwork(nn.Module):
    """NAS-Bench-101's skeleton: stem, stacks of cells with 2x2 max-pools between them, pooling, classifier.

    The stem is a 3x3 conv-BN-ReLU to ``spec.stem_channels``; each stack after the first halves the
    resolution (rounding up) and doubles the channels.
    """

    def __init__(self, spec: DAGCellSpec, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        channels = spec.stem_channels
        self.stem = ConvBNReLU(input_shape[0], channels, 3)
        layers: list[nn.Module] = []
        c_in = channels
        for stack in range(spec.stacks):
            if stack > 0:
                layers.append(nn.MaxPool2d(2, stride=2, ceil_mode=True))
                channels *= 2
            for _ in range(spec.cells_per_stack):
                layers.append(DAGCell(spec, c_in, channels))
                c_in = channels
        self.cells = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.cells(self.stem(x))
        logits: torch.Tensor = self.classifier(self.pool(out).flatten(1))
        return logits


@register_builder(DAGCellSpec)
def build_dag_network(spec: DAGCellSpec, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return DAGCellNetwork(spec, input_shape, num_classes)
