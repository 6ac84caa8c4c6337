"""Names -> items, with the one policy every registry of the package follows.

Samplers, spaces, spec types, model builders, op names and op factories are each kept in a
:class:`Registry`. Registering a name twice with a different item is an error unless
``replace=True`` is passed. Registering the same item again, or the same definition run again (a
function or class of the same module and qualified name: a reloaded module, a notebook cell run
twice), replaces it quietly. Listings take an ``fnmatch`` pattern; an unknown name's error lists the known
ones and the closest match.
"""

from __future__ import annotations

import difflib
import fnmatch
import threading
from typing import Generic
from typing import TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """The items of one ``kind`` (``"sampler"``, ``"space"``, ...) by name.

    Example:
        >>> registry = Registry[int]("number")
        >>> registry.register("one", 1)
        1
        >>> registry.names("o*")
        ['one']
        >>> registry.get("oen")
        Traceback (most recent call last):
        ...
        ValueError: number must be one of ['one'], got 'oen' (did you mean 'one'?).
    """

    def __init__(self, kind: str) -> None:
        self._kind = kind
        self._items: dict[str, T] = {}
        self._lock = threading.Lock()

    @property
    def kind(self) -> str:
        """What the registry holds, as its errors name it."""
        return self._kind

    def register(self, name: str, item: T, *, replace: bool = False) -> T:
        """Register ``item`` as ``name`` and return it.

        Raises:
            ValueError: ``name`` is not a non-empty string, or it is taken by another item and
                ``replace`` is false.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: the name of a {self._kind} must be a non-empty string, got {name!r}.")
        with self._lock:
            existing = self._items.get(name)
            if existing is not None and not replace and not _same(existing, item):
                raise ValueError(
                    f"name: {self._kind} {name!r} is already registered (as {existing!r}); "
                    "pass replace=True to replace it."
                )
            self._items[name] = item
        return item

    def get(self, name: str) -> T:
        """The item registered as ``name``.

        Raises:
            ValueError: ``name`` is not registered; the message lists the known names.
        """
        try:
            return self._items[name]
        except (KeyError, TypeError):
            pass
        known = self.names()
        close = difflib.get_close_matches(name, known, n=1) if isinstance(name, str) else []
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ValueError(f"{self._kind} must be one of {known}, got {name!r}{hint}.")

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching the shell-style ``pattern`` (``fnmatch``), sorted."""
        if not isinstance(pattern, str):
            raise ValueError(f"pattern must be a string such as 'sep_conv_*', got {pattern!r}.")
        return sorted(name for name in list(self._items) if fnmatch.fnmatchcase(name, pattern))

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._items

    def __repr__(self) -> str:
        return f"Registry({self._kind!r}, names={self.names()})"


def _same(existing: object, item: object) -> bool:
    if existing is item:
        return True
    where = [(getattr(x, "__module__", None), getattr(x, "__qualname__", None)) for x in (existing, item)]
    if where[0] == where[1] and where[0][1] is not None and "<lambda>" not in where[0][1]:
        return True  # the same definition, run again
    try:
        return bool(existing == item)
    except Exception:  # noqa: BLE001  (an item whose == fails is simply not the same)
        return False
