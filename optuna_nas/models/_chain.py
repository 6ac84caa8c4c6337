"""Chain specs as networks: the layers in order, then a linear classifier."""

from __future__ import annotations

import torch
from torch import nn

from optuna_nas.models._registry import register_builder
from optuna_nas.spaces import ChainLayer
from optuna_nas.spaces import ChainSpec
from optuna_nas.spaces import conv_output_size
from optuna_nas.spaces import pool_output_size


def conv_unit(c_in: int, layer: ChainLayer) -> nn.Sequential:
    """A conv layer of a chain: convolution (padding ``kernel // 2``), batch norm, ReLU."""
    kernel, filters, stride = layer.kernel, layer.filters, layer.stride
    assert kernel is not None and filters is not None and stride is not None  # ChainLayer checks them
    return nn.Sequential(
        nn.Conv2d(c_in, filters, kernel, stride, kernel // 2, bias=False),
        nn.BatchNorm2d(filters),
        nn.ReLU(inplace=True),
    )


def pool_unit(layer: ChainLayer, size_h: int, size_w: int) -> nn.Module:
    """A 2x2 stride-2 pool that rounds up, narrowed on a side that is already down to one pixel."""
    pool_type = nn.MaxPool2d if layer.type == "max_pool" else nn.AvgPool2d
    return pool_type((min(2, size_h), min(2, size_w)), stride=2, ceil_mode=True)


def skip_projection(c_in: int, c_out: int, size_in: tuple[int, int], size_out: tuple[int, int]) -> nn.Module:
    """What a skip connection passes through to be added to a layer's output: average pooling to
    the layer's size where the sizes differ, a 1x1 convolution to its filters where they differ.
    """
    parts: list[nn.Module] = []
    if size_in != size_out:
        parts.append(nn.AdaptiveAvgPool2d(size_out))
    if c_in != c_out:
        parts.append(nn.Conv2d(c_in, c_out, 1, bias=False))
    return nn.Sequential(*parts) if parts else nn.Identity()


def layer_output_size(layer: ChainLayer, size_h: int, size_w: int) -> tuple[int, int]:
    """Height and width after a conv or pool layer."""
    if layer.type == "conv":
        assert layer.kernel is not None and layer.stride is not None  # ChainLayer checks a conv has them
        return (
            conv_output_size(size_h, kernel=layer.kernel, stride=layer.stride),
            conv_output_size(size_w, kernel=layer.kernel, stride=layer.stride),
        )
    return pool_output_size(size_h), pool_output_size(size_w)


class SkipChain(nn.Module):
    """A chain whose conv layers add the outputs of earlier conv layers (``ChainLayer.skips``):
    ``layer i = BN(conv_unit(x) + sum_j projection_ij(output_j))``, as ENAS's macro space does.
    """

    def __init__(self, spec: ChainSpec, input_shape: tuple[int, int, int], num_classes: int) -> None:
        super().__init__()
        channels, size_h, size_w = input_shape
        self.spec = spec
        self.units = nn.ModuleList()
        self.projections = nn.ModuleDict()
        self.norms = nn.ModuleDict()
        shapes: dict[int, tuple[int, int, int]] = {}  # conv layer -> its output's (channels, height, width)
        features: int | None = None
        for index, layer in enumerate(spec.layers):
            if layer.type == "conv":
                assert layer.filters is not None  # ChainLayer checks a conv has filters
                self.units.append(conv_unit(channels, layer))
                channels = layer.filters
                size_h, size_w = layer_output_size(layer, size_h, size_w)
                for source in layer.skips or ():
                    c_in, h_in, w_in = shapes[source]
                    self.projections[f"{index}_{source}"] = skip_projection(
                        c_in, channels, (h_in, w_in), (size_h, size_w)
                    )
                if layer.skips:
                    self.norms[str(index)] = nn.BatchNorm2d(channels)
                shapes[index] = (channels, size_h, size_w)
            elif layer.type in ("max_pool", "avg_pool"):
                self.units.append(pool_unit(layer, size_h, size_w))
                size_h, size_w = layer_output_size(layer, size_h, size_w)
            else:
                assert layer.units is not None  # ChainLayer checks an fc layer has units
                flatten: list[nn.Module] = []
                if features is None:
                    flatten.append(nn.Flatten())
                    features = channels * size_h * size_w
                self.units.append(nn.Sequential(*flatten, nn.Linear(features, layer.units), nn.ReLU(inplace=True)))
                features = layer.units
        self.flatten = features is None
        if features is None:
            features = channels * size_h * size_w
        self.classifier = nn.Linear(features, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs: dict[int, torch.Tensor] = {}
        for index, (layer, unit) in enumerate(zip(self.spec.layers, self.units, strict=True)):
            x = unit(x)
            if layer.skips:
                for source in layer.skips:
                    x = x + self.projections[f"{index}_{source}"](outputs[source])
                x = self.norms[str(index)](x)
            if layer.type == "conv":
                outputs[index] = x
        if self.flatten:
            x = torch.flatten(x, 1)
        logits: torch.Tensor = self.classifier(x)
        return logits


@register_builder(ChainSpec)
def build_chain(spec: ChainSpec, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    if any(layer.skips for layer in spec.layers):
        return SkipChain(spec, input_shape, num_classes)
    channels, size_h, size_w = input_shape
    layers: list[nn.Module] = []
    features: int | None = None  # set once the representation is flattened
    for layer in spec.layers:
        if layer.type == "conv":
            assert layer.filters is not None  # ChainLayer checks a conv has filters
            layers += list(conv_unit(channels, layer))
            channels = layer.filters
            size_h, size_w = layer_output_size(layer, size_h, size_w)
        elif layer.type in ("max_pool", "avg_pool"):
            layers.append(pool_unit(layer, size_h, size_w))
            size_h, size_w = layer_output_size(layer, size_h, size_w)
        else:
            assert layer.units is not None  # ChainLayer checks an fc layer has units
            if features is None:
                layers.append(nn.Flatten())
                features = channels * size_h * size_w
            layers += [nn.Linear(features, layer.units), nn.ReLU(inplace=True)]
            features = layer.units
    if features is None:
        layers.append(nn.Flatten())
        features = channels * size_h * size_w
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)
