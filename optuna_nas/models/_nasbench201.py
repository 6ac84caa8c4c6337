"""NAS-Bench-201 specs as the benchmark's network (Dong & Yang, 2020)."""

from __future__ import annotations

import torch
from torch import nn

from optuna_nas.models._ops import ReLUConvBN
from optuna_nas.models._ops import create_op
from optuna_nas.models._registry import register_builder
from optuna_nas.spaces import NB201_EDGES
from optuna_nas.spaces import NASBench201Spec

#: The benchmark's fixed skeleton: stem channels and cells per stage.
STEM_CHANNELS = 16
CELLS_PER_STAGE = 5


class NASBench201Cell(nn.Module):
    """Four nodes; node ``j`` sums op(edge) over every earlier node; node 3 is the output."""

    def __init__(self, spec: NASBench201Spec, channels: int) -> None:
        super().__init__()
        self.edges = NB201_EDGES
        self.ops = nn.ModuleList(create_op(op, channels, 1) for op in spec.ops)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to_node in (1, 2, 3):
            nodes.append(
                sum(op(nodes[src]) for (dst, src), op in zip(self.edges, self.ops, strict=True) if dst == to_node)
            )
        return nodes[3]


class ResidualReduction(nn.Module):
    """The benchmark's reduction block: a stride-2 residual basic block doubling the channels."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv_a = ReLUConvBN(c_in, c_out, 3, 2, 1)
        self.conv_b = ReLUConvBN(c_out, c_out, 3, 1, 1)
        # ceil_mode keeps odd sizes in step with the stride-2 conv; even sizes are as in the benchmark.
        self.downsample = nn.Sequential(
            nn.AvgPool2d(kernel_size=2, stride=2, padding=0, ceil_mode=True), nn.Conv2d(c_in, c_out, 1, bias=False)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.downsample(x) + self.conv_b(self.conv_a(x))
        return out


class NASBench201Network(nn.Module):
    """Stem, three stages of five cells (16/32/64 channels) joined by residual reductions, head."""

    def __init__(self, spec: NASBench201Spec, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        c = STEM_CHANNELS
        self.stem = nn.Sequential(nn.Conv2d(input_shape[0], c, 3, padding=1, bias=False), nn.BatchNorm2d(c))
        layers: list[nn.Module] = []
        for stage in range(3):
            if stage > 0:
                layers.append(ResidualReduction(c, 2 * c))
                c *= 2
            layers += [NASBench201Cell(spec, c) for _ in range(CELLS_PER_STAGE)]
        self.cells = nn.Sequential(*layers)
        self.lastact = nn.Sequential(nn.BatchNorm2d(c), nn.ReLU(inplace=True))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.lastact(self.cells(self.stem(x)))
        logits: torch.Tensor = self.classifier(self.pool(out).flatten(1))
        return logits


@register_builder(NASBench201Spec)
def build_nasbench201(spec: NASBench201Spec, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    return NASBench201Network(spec, input_shape, num_classes)
