"""Spec type -> network builder, and the one entry point ``build_model``."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

from torch import nn

from optuna_nas._registry import Registry
from optuna_nas._validation import check_int
from optuna_nas.spaces import ArchitectureSpec

Builder = Callable[[Any, tuple[int, int, int], int], nn.Module]
_BUILDERS: Registry[Builder] = Registry("model builder")


def register_builder(spec_type: type[ArchitectureSpec], *, replace: bool = False) -> Callable[[Builder], Builder]:
    """Register ``builder(spec, input_shape, num_classes) -> nn.Module`` for the specs of
    ``spec_type`` (a decorator); the builder is found by the spec's ``space`` tag.

    Raises:
        ValueError: ``spec_type`` has no ``space`` tag, or its tag has another builder and
            ``replace`` is false.
    """
    if not isinstance(spec_type, type) or not issubclass(spec_type, ArchitectureSpec) or not spec_type.space:
        raise ValueError(f"spec_type must be an ArchitectureSpec subclass with a 'space' tag, got {spec_type!r}.")

    def decorator(builder: Builder) -> Builder:
        return _BUILDERS.register(spec_type.space, builder, replace=replace)

    return decorator


def available_builders(pattern: str = "*") -> list[str]:
    """The ``space`` tags of the specs :func:`build_model` can build, matching ``pattern``, sorted."""
    return _BUILDERS.names(pattern)


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
    if not isinstance(spec, ArchitectureSpec) or spec.space not in _BUILDERS:
        raise ValueError(
            f"spec: no model builder for {type(spec).__name__} (space {getattr(spec, 'space', None)!r}); "
            f"builders exist for the spaces {available_builders()} (optuna_nas.models.register_builder adds one)."
        )
    shape = tuple(input_shape)
    if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be (channels, height, width) of positive ints, got {input_shape!r}.")
    check_int("num_classes", num_classes, minimum=1)
    return _BUILDERS.get(spec.space)(spec, shape, num_classes)
