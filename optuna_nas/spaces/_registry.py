"""The spaces, spec types and op names users may name, kept torch-free."""

from __future__ import annotations

from collections.abc import Callable
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar
from typing import overload

from optuna_nas._registry import Registry

if TYPE_CHECKING:
    from optuna_nas.spaces._base import ArchitectureSpec
    from optuna_nas.spaces._base import Space

SpaceType = TypeVar("SpaceType", bound="type[Space]")
SpecType = TypeVar("SpecType", bound="type[ArchitectureSpec]")

_SPACES: Registry[type[Space]] = Registry("space")
_SPECS: Registry[type[ArchitectureSpec]] = Registry("spec type")
_OP_NAMES: Registry[str] = Registry("op")


@overload
def register_space(space_type: SpaceType, *, replace: bool = False) -> SpaceType: ...


@overload
def register_space(space_type: None = None, *, replace: bool = False) -> Callable[[SpaceType], SpaceType]: ...


def register_space(space_type: Any = None, *, replace: bool = False) -> Any:
    """Make a :class:`Space` subclass available to :func:`create_space` by its ``name`` attribute.
    A class decorator: ``@register_space`` or ``@register_space(replace=True)``.

    Raises:
        ValueError: ``space_type`` is not a Space subclass with a ``name``, or the name is taken by
            another space and ``replace`` is false.
    """
    from optuna_nas.spaces._base import Space

    return _class_registration(
        _SPACES,
        space_type,
        base=Space,
        tag="name",
        wanted="space_type must be a Space subclass with a 'name'",
        replace=replace,
    )


@overload
def register_spec(spec_type: SpecType, *, replace: bool = False) -> SpecType: ...


@overload
def register_spec(spec_type: None = None, *, replace: bool = False) -> Callable[[SpecType], SpecType]: ...


def register_spec(spec_type: Any = None, *, replace: bool = False) -> Any:
    """Make an :class:`ArchitectureSpec` subclass readable by :func:`spec_from_dict` by its ``space``
    tag. A class decorator: ``@register_spec`` or ``@register_spec(replace=True)``.

    Raises:
        ValueError: ``spec_type`` is not an ArchitectureSpec subclass with a ``space`` tag, or the
            tag is taken by another spec type and ``replace`` is false.
    """
    from optuna_nas.spaces._base import ArchitectureSpec

    return _class_registration(
        _SPECS,
        spec_type,
        base=ArchitectureSpec,
        tag="space",
        wanted="spec_type must be an ArchitectureSpec subclass with a 'space' tag",
        replace=replace,
    )


def _class_registration(registry: Registry[Any], cls: Any, *, base: type, tag: str, wanted: str, replace: bool) -> Any:
    """Register ``cls`` under its ``tag`` attribute (checked to be a ``base`` subclass with one, else
    ``ValueError(f"{wanted}, got ...")``), or, when ``cls`` is ``None``, the decorator that does.
    """

    def register(cls: Any) -> Any:
        if not isinstance(cls, type) or not issubclass(cls, base) or not getattr(cls, tag):
            raise ValueError(f"{wanted}, got {cls!r}.")
        registry.register(getattr(cls, tag), cls, replace=replace)
        return cls

    return register if cls is None else register(cls)


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
    kind = str(data.get("space")) if isinstance(data, dict) else repr(data)
    if kind not in _SPECS:
        try:
            _SPECS.get(kind)  # the registry's error: the known tags and the closest one
        except ValueError as error:
            raise ValueError(
                f"data['space']: {str(error).removeprefix('spec type ')} A spec type of your own is read once "
                "its module ran spaces.register_spec."
            ) from None
    spec_type = _SPECS.get(kind)
    try:
        return spec_type.from_dict(data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as error:
        raise ValueError(f"data is not a valid {spec_type.__name__} ({type(error).__name__}: {error}).") from None
