"""The spaces, spec types and op names users may name, kept torch-free."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from optuna_nas._registry import Registry

if TYPE_CHECKING:
    from optuna_nas.spaces._base import ArchitectureSpec
    from optuna_nas.spaces._base import Space

SpaceType = TypeVar("SpaceType", bound="type[Space]")
SpecType = TypeVar("SpecType", bound="type[ArchitectureSpec]")

_SPACES: Registry[type[Space]] = Registry("space")
_SPECS: Registry[type[ArchitectureSpec]] = Registry("spec type")
_OP_NAMES: Registry[str] = Registry("op")


def register_space(space_type: SpaceType, *, replace: bool = False) -> SpaceType:
    """Make a :class:`Space` subclass available to :func:`create_space` by its ``name`` attribute;
    usable as a class decorator.

    Raises:
        ValueError: The name is taken by another space and ``replace`` is false.
    """
    _SPACES.register(space_type.name, space_type, replace=replace)
    return space_type


def register_spec(spec_type: SpecType, *, replace: bool = False) -> SpecType:
    """Make an :class:`ArchitectureSpec` subclass readable by :func:`spec_from_dict` by its ``space``
    tag; usable as a class decorator.

    Raises:
        ValueError: The tag is taken by another spec type and ``replace`` is false.
    """
    _SPECS.register(spec_type.space, spec_type, replace=replace)
    return spec_type


def register_op_name(name: str) -> str:
    """Declare an op name that cell spaces may choose. :func:`optuna_nas.models.register_op`
    declares the names of the ops it builds; call this directly only where a space must know a name
    before the module that builds the op is imported. Declaring a known name again changes nothing.

    Raises:
        ValueError: ``name`` is not a non-empty string.
    """
    return _OP_NAMES.register(name, name)


def available_spaces(pattern: str = "*") -> list[str]:
    """Names of the registered spaces matching ``pattern`` (shell-style), sorted."""
    return _SPACES.names(pattern)


def available_op_names(pattern: str = "*") -> list[str]:
    """Op names the spaces accept, matching ``pattern`` (shell-style, e.g. ``"sep_conv_*"``), sorted."""
    return _OP_NAMES.names(pattern)


def check_op_names(ops: Any) -> tuple[str, ...]:
    """``ops`` as a tuple of distinct declared op names, else a ``ValueError`` naming ``ops``."""
    if isinstance(ops, str) or not isinstance(ops, Sequence) or len(ops) == 0:
        raise ValueError(f"ops must be a non-empty sequence of op names, got {ops!r}.")
    unknown = [op for op in ops if op not in _OP_NAMES]
    if unknown:
        raise ValueError(
            f"ops: unknown op(s) {unknown!r}; known ops: {available_op_names()} "
            "(optuna_nas.models.register_op adds one)."
        )
    if len(set(ops)) != len(ops):
        raise ValueError(f"ops must not repeat an op, got {list(ops)!r}.")
    return tuple(ops)


def create_space(name: str, **kwargs: Any) -> Space:
    """Make the registered space called ``name`` (``chain``, ``cell``, ``nb201``, ``dag`` or one of
    yours) with ``kwargs``.

    Raises:
        ValueError: ``name`` is not a registered space; the message lists the known ones.
    """
    return _SPACES.get(name)(**kwargs)


def spec_from_dict(data: dict[str, Any]) -> ArchitectureSpec:
    """Rebuild a spec from :meth:`ArchitectureSpec.to_dict` output, by its ``space`` tag.

    Raises:
        ValueError: ``data`` names no registered spec type, or is not a valid spec of it.
    """
    kind = data.get("space") if isinstance(data, dict) else None
    if not isinstance(kind, str) or kind not in _SPECS:
        raise ValueError(f"data['space'] must be one of {_SPECS.names()}, got {kind!r}.")
    return _SPECS.get(kind).from_dict(data)
