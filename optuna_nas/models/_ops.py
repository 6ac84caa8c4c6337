"""The op registry: every op a cell may name, built by ``create_op(name, channels, stride)``."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from optuna_nas._registry import Registry
from optuna_nas.spaces import register_op_name

OpFactory = Callable[[int, int], nn.Module]
_OPS: Registry[OpFactory] = Registry("op")


def register_op(name: str, *, replace: bool = False) -> Callable[[OpFactory], OpFactory]:
    """Register ``factory(channels, stride) -> nn.Module`` under ``name`` (a decorator), and declare
    the name to the spaces (:func:`optuna_nas.spaces.register_op_name`) so that ``CellSpace(ops=...)``
    and ``DAGCellSpace(ops=...)`` accept it.

    The op maps ``channels`` to ``channels``; with ``stride=2`` it halves the height and width.

    Raises:
        ValueError: ``name`` is taken by another factory and ``replace`` is false.
    """
    if not isinstance(name, str):
        raise ValueError(f"name: register_op takes the op's name, as @register_op('my_op'); got {name!r}.")

    def decorator(factory: OpFactory) -> OpFactory:
        if not callable(factory):
            raise ValueError(f"factory: op {name!r} needs a callable factory(channels, stride), got {factory!r}.")
        _OPS.register(name, factory, replace=replace)
        register_op_name(name)
        return factory

    return decorator


def available_ops(pattern: str = "*") -> list[str]:
    """Names of the ops :func:`create_op` can build, matching ``pattern`` (shell-style), sorted."""
    return _OPS.names(pattern)


def create_op(name: str, channels: int, stride: int = 1) -> nn.Module:
    """Build the op ``name`` mapping ``channels`` to ``channels``, with ``stride`` 1 or 2.

    Raises:
        ValueError: ``name`` is not a registered op; the message lists the known ones.
    """
    return _OPS.get(name)(channels, stride)


class ReLUConvBN(nn.Sequential):
    """ReLU, convolution, batch norm: the unit NASNet, PNAS and NAS-Bench-201 ops are made of."""

    def __init__(
        self,
        c_in: int,
        c_out: int,
        kernel: int | tuple[int, int],
        stride: int | tuple[int, int] = 1,
        padding: int | tuple[int, int] = 0,
        dilation: int = 1,
        groups: int = 1,
    ) -> None:
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel, stride, padding, dilation, groups, bias=False),
            nn.BatchNorm2d(c_out),
        )


class SepConv(nn.Sequential):
    """Depthwise-separable conv, applied twice as in NASNet and PNAS."""

    def __init__(self, channels: int, kernel: int, stride: int) -> None:
        pad = kernel // 2
        super().__init__(
            ReLUConvBN(channels, channels, kernel, stride, pad, groups=channels),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
            ReLUConvBN(channels, channels, kernel, 1, pad, groups=channels),
            nn.Conv2d(channels, channels, 1, bias=False),
            nn.BatchNorm2d(channels),
        )


class FactorizedReduce(nn.Module):
    """Halves the spatial size with two offset stride-2 1x1 convs (NASNet's reducing identity)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv_a = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(x)
        shifted = x[:, :, 1:, 1:]
        if shifted.shape[-1] == 0 or shifted.shape[-2] == 0:
            shifted = x
        a = self.conv_a(x)
        b = self.conv_b(shifted)
        if b.shape[-2:] != a.shape[-2:]:
            b = nn.functional.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        out: torch.Tensor = self.bn(torch.cat([a, b], dim=1))
        return out


class Zero(nn.Module):
    """The ``none`` op: outputs zeros of the (possibly strided) input's shape."""

    def __init__(self, stride: int) -> None:
        super().__init__()
        self.stride = stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


def _identity(channels: int, stride: int) -> nn.Module:
    return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels)


def _pool(kind: type[nn.Module], channels: int, stride: int) -> nn.Module:
    if kind is nn.AvgPool2d:
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    return nn.MaxPool2d(3, stride=stride, padding=1)


register_op("identity")(_identity)
register_op("skip_connect")(_identity)
register_op("none")(lambda channels, stride: Zero(stride))
register_op("avg_pool_3x3")(lambda channels, stride: _pool(nn.AvgPool2d, channels, stride))
register_op("max_pool_3x3")(lambda channels, stride: _pool(nn.MaxPool2d, channels, stride))
register_op("sep_conv_3x3")(lambda channels, stride: SepConv(channels, 3, stride))
register_op("sep_conv_5x5")(lambda channels, stride: SepConv(channels, 5, stride))
register_op("sep_conv_7x7")(lambda channels, stride: SepConv(channels, 7, stride))
register_op("dil_conv_3x3")(lambda channels, stride: ReLUConvBN(channels, channels, 3, stride, 2, dilation=2))
register_op("conv_1x7_7x1")(
    lambda channels, stride: nn.Sequential(
        nn.ReLU(inplace=False),
        nn.Conv2d(channels, channels, (1, 7), (1, stride), (0, 3), bias=False),
        nn.Conv2d(channels, channels, (7, 1), (stride, 1), (3, 0), bias=False),
        nn.BatchNorm2d(channels),
    )
)
register_op("nor_conv_1x1")(lambda channels, stride: ReLUConvBN(channels, channels, 1, stride, 0))
register_op("nor_conv_3x3")(lambda channels, stride: ReLUConvBN(channels, channels, 3, stride, 1))
