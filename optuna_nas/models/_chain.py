"""Chain specs as networks: the layers in order, then a linear classifier."""

from __future__ import annotations

from torch import nn

from optuna_nas.models._registry import register_builder
from optuna_nas.spaces import ChainSpec
from optuna_nas.spaces import conv_output_size
from optuna_nas.spaces import pool_output_size


@register_builder(ChainSpec)
def build_chain(spec: ChainSpec, input_shape: tuple[int, int, int], num_classes: int) -> nn.Module:
    channels, size_h, size_w = input_shape
    layers: list[nn.Module] = []
    features: int | None = None  # set once the representation is flattened
    for layer in spec.layers:
        if layer.type == "conv":
            kernel, filters, stride = layer.kernel, layer.filters, layer.stride
            assert kernel is not None and filters is not None and stride is not None  # ChainLayer checks them
            pad = kernel // 2
            layers += [
                nn.Conv2d(channels, filters, kernel, stride, pad, bias=False),
                nn.BatchNorm2d(filters),
                nn.ReLU(inplace=True),
            ]
            size_h = conv_output_size(size_h, kernel=kernel, stride=stride)
            size_w = conv_output_size(size_w, kernel=kernel, stride=stride)
            channels = filters
        elif layer.type in ("max_pool", "avg_pool"):
            # A 2x2 window, narrowed on a side that is already down to one pixel.
            window = (min(2, size_h), min(2, size_w))
            pool_type = nn.MaxPool2d if layer.type == "max_pool" else nn.AvgPool2d
            layers.append(pool_type(window, stride=2, ceil_mode=True))
            size_h, size_w = pool_output_size(size_h), pool_output_size(size_w)
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
