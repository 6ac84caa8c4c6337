"""Weights drawn from a generator of their own, so networks built in parallel threads are the same
as networks built one after another (torch's global generator is shared by every thread).
"""

from __future__ import annotations

import math
import threading
import zlib

import torch
from torch import nn

#: Modules initialised by their own ``reset_parameters`` draw from torch's global generator: one
#: at a time, each from a seed of its own.
_GLOBAL_GENERATOR = threading.Lock()


def initialize_parameters(model: nn.Module, *, seed: int) -> nn.Module:
    """Draw every parameter of ``model`` from a generator seeded with ``seed``; returns ``model``.

    Convolutions and linear layers get PyTorch's default initialisation (Kaiming-uniform weights
    with ``a = sqrt(5)``, biases uniform in +-1/sqrt(fan_in)), drawn from a generator of their own.
    Any other module with parameters of its own (batch and layer norms, ops added with
    ``register_op``) is reset by its own ``reset_parameters``, under a lock, with torch's global
    generator seeded from ``seed`` and the module's position and restored afterwards. The same seed
    gives the same weights in any thread, as long as no other code draws from torch's global
    generator while a custom module is reset.

    Raises:
        ValueError: A module has parameters of its own but no ``reset_parameters``.
    """
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for name, module in model.named_modules():
            if not any(True for _ in module.parameters(recurse=False)):
                continue
            if type(module) in (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear):
                _default_init(module.weight, module.bias, generator)
            elif hasattr(module, "reset_parameters"):
                with _GLOBAL_GENERATOR, torch.random.fork_rng(devices=[]):
                    torch.manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1))
                    module.reset_parameters()
            else:
                raise ValueError(
                    f"model: module {name!r} ({type(module).__name__}) has parameters but no "
                    "reset_parameters() to initialise them."
                )
    return model


def _fan_in(tensor: torch.Tensor) -> int:
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
