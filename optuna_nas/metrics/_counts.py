"""Parameter and FLOP counts."""

from __future__ import annotations

import copy
import dataclasses
import warnings
from collections.abc import Sequence

from torch import nn


@dataclasses.dataclass(frozen=True)
class ComputeCost:
    """Cost of one forward pass on a single sample.

    Attributes:
        params: Trainable and frozen parameters of the model.
        macs: Multiply-accumulates, as counted by thop.
        flops: Floating-point operations, reported as ``2 * macs`` (one multiply and one add per
            MAC), the convention of most NAS papers that report FLOPs rather than MACs.
    """

    params: int
    macs: int
    flops: int


def count_params(model: nn.Module) -> int:
    """Number of parameters of ``model``."""
    return sum(p.numel() for p in model.parameters())


def count_cost(model: nn.Module, *, input_shape: Sequence[int]) -> ComputeCost:
    """Count the parameters, MACs and FLOPs of one forward pass of a single ``input_shape`` sample.

    thop attaches counters to the modules it profiles, so a copy of ``model`` is profiled (on the
    CPU, in eval mode) and the model itself is left as it was.
    """
    import torch

    probe = copy.deepcopy(model).to("cpu").float().eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # thop warns about its own use of distutils
        from thop import profile

        macs, _ = profile(probe, inputs=(torch.zeros(1, *input_shape),), verbose=False)
    macs = round(float(macs))
    return ComputeCost(params=count_params(model), macs=macs, flops=2 * macs)
