"""Weights drawn from a generator of their own, so networks built in parallel threads are the same
as networks built one after another (torch's global generator is shared by every thread)."""

from __future__ import annotations

import math

import torch
from torch import nn


def initialize_parameters(model: nn.Module, *, seed: int) -> nn.Module:
    """Draw every parameter of ``model`` from a generator seeded with ``seed``; returns ``model``.

    Convolutions and linear layers get PyTorch's default initialisation (Kaiming-uniform weights
    with ``a = sqrt(5)``, biases uniform in +-1/sqrt(fan_in)); batch norms are reset (weights 1,
    biases 0, fresh running statistics); any other parameter is drawn uniformly in
    +-1/sqrt(fan_in). The same seed gives the same weights in any thread.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            own = dict(module.named_parameters(recurse=False))
            if not own:
                continue
            if isinstance(module, (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)):
                _default_init(module.weight, module.bias, generator)
            elif isinstance(module, nn.modules.batchnorm._NormBase):
                module.reset_parameters()
            else:
                for parameter in own.values():
                    _uniform(parameter, 1.0 / math.sqrt(max(1, _fan_in(parameter))), generator)
    return model


def _fan_in(tensor: torch.Tensor) -> int:
    if tensor.dim() < 2:
        return tensor.numel()
    return tensor.shape[1] * math.prod(tensor.shape[2:])


def _uniform(tensor: torch.Tensor, bound: float, generator: torch.Generator) -> None:
    values = torch.empty(tensor.shape, dtype=tensor.dtype).uniform_(-bound, bound, generator=generator)
    tensor.copy_(values)


def _default_init(weight: torch.Tensor, bias: torch.Tensor | None, generator: torch.Generator) -> None:
    # kaiming_uniform_(a=sqrt(5)) is uniform in +-sqrt(6 / ((1 + a^2) fan_in)) = +-1/sqrt(fan_in).
    fan_in = _fan_in(weight)
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    _uniform(weight, bound, generator)
    if bias is not None:
        _uniform(bias, bound, generator)
