"""Spec type -> network builder, and the one entry point ``build_model``."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from torch import nn

from optuna_nas._validation import check_int
from optuna_nas.spaces import ArchitectureSpec

Builder = Callable[[Any, tuple[int, int, int], int], nn.Module]
_BUILDERS: dict[type, Builder] = {}


def register_builder(spec_type: type) -> Callable[[Builder], Builder]:
    """Register ``builder(spec, input_shape, num_classes) -> nn.Module`` for ``spec_type``."""

    def decorator(builder: Builder) -> Builder:
        _BUILDERS[spec_type] = builder
        return builder

    return decorator


def build_model(spec: ArchitectureSpec, *, input_shape: Sequence[int], num_classes: int) -> nn.Module:
    """Build the network described by ``spec``.

    Args:
        spec: An architecture spec from any of the project's spaces.
        input_shape: ``(channels, height, width)`` of one input image.
        num_classes: Number of output logits.

    Returns:
        A freshly initialised ``torch.nn.Module`` mapping ``(N, *input_shape)`` to
        ``(N, num_classes)``.

    Raises:
        ValueError: The spec type has no builder, or a shape argument is out of range.
    """
    if type(spec) not in _BUILDERS:
        known = sorted(t.__name__ for t in _BUILDERS)
        raise ValueError(f"spec: no builder for {type(spec).__name__}; known spec types: {known}.")
    shape = tuple(input_shape)
    if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be (channels, height, width) of positive ints, got {input_shape!r}.")
    check_int("num_classes", num_classes, minimum=1)
    return _BUILDERS[type(spec)](spec, shape, num_classes)
