"""Which choices would only lead back to architectures already evaluated, or under evaluation.

Trials form a trie of their decisions, in the order they were taken. A node (a prefix of decisions)
is exhausted when a whole architecture ended there (evaluated, or pending: decided and still
running), or when the decision that follows it has finitely many choices and every one leads to an
exhausted node. The space asks the same next decision after the same earlier decisions, so the
decision after a prefix is known from any trial that went past it. A trial cut short (pruned or
failed before its architecture was whole) adds its prefix but ends nothing, so it hides nothing.

Trials are added one at a time at the cost of their own decisions (the exhausted flags change only
along the new path); pending architectures are added and taken back the same way.
"""

from __future__ import annotations

import itertools
import math
import zlib
from collections.abc import Callable
from collections.abc import Hashable
from collections.abc import Iterable
from collections.abc import Mapping
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution

from optuna_nas.samplers._actions import ActionSpace

#: Shapes (decision names and distributions) of whole architectures kept for looking ahead.
_TEMPLATES_KEPT = 64
#: Completions of a prefix whose keys are checked before it counts as leading only to seen keys.
_LOOKAHEAD_BUDGET = 64

#: ``dedup_key(params) -> hashable``: equal keys are the same architecture; ``None`` for params that
#: are not a whole architecture yet.
DedupKey = Callable[[Mapping[str, Any]], Hashable]


class _Node:
    __slots__ = ("children", "ended", "ended_by", "exhausted", "next_size", "parent", "pending")

    def __init__(self, parent: _Node | None) -> None:
        self.children: dict[Any, _Node] = {}
        self.parent = parent
        self.ended = False
        self.ended_by: int | None = None  # the lowest trial number that evaluated this architecture
        self.pending = 0
        self.next_size: int | None = None  # choices of the next decision, if finite and known
        self.exhausted = False

    def refresh(self) -> None:
        self.exhausted = (
            self.ended
            or self.pending > 0
            or (
                self.next_size is not None
                and len(self.children) >= self.next_size
                and all(child.exhausted for child in self.children.values())
            )
        )


class EvaluatedTrie:
    """The decisions of evaluated (and pending) trials, to tell which choices reach only seen ones.

    Args:
        bins: Bins of float and wide int distributions (as in :class:`ActionSpace`).
        dedup_key: Optional canonical key of whole architectures: an architecture whose key was
            evaluated (or is pending) counts as evaluated, whatever its decisions.
    """

    def __init__(self, bins: int, dedup_key: DedupKey | None = None) -> None:
        self._root = _Node(None)
        self._bins = bins
        self._dedup_key = dedup_key
        self._keys: dict[Hashable, int] = {}  # key -> evaluated (or pending) architectures with it
        self._sizes: dict[BaseDistribution, int | None] = {}
        self._templates: dict[tuple[str, ...], list[BaseDistribution]] = {}

    def _next_size(self, distribution: BaseDistribution) -> int | None:
        size = self._sizes.get(distribution, -1)
        if size == -1:
            actions = ActionSpace(distribution, self._bins)
            size = self._sizes[distribution] = actions.size if actions.exact else None
        return size

    def key_of(self, params: Mapping[str, Any]) -> Hashable | None:
        """The canonical key of ``params`` (``None`` without a key function or if not whole)."""
        if self._dedup_key is None:
            return None
        try:
            return self._dedup_key(params)
        except (KeyError, ValueError, TypeError):
            return None

    def add(
        self,
        params: Mapping[str, Any],
        distributions: Mapping[str, BaseDistribution],
        *,
        whole: bool,
        pending: bool = False,
        number: int | None = None,
    ) -> None:
        """Add a trial's decisions; ``whole`` ends an architecture there (``pending``: for now).

        Trials with unhashable values are left out: they cannot be compared.
        """
        try:
            path = [(name, value) for name, value in params.items()]
            hash(tuple(path))
        except TypeError:
            return
        node = self._root
        for name, value in path:
            node.next_size = self._next_size(distributions[name])
            node = node.children.setdefault((name, value), _Node(node))
        if whole:
            if pending:
                node.pending += 1
            else:
                node.ended = True
                if number is not None and (node.ended_by is None or number < node.ended_by):
                    node.ended_by = number
            key = self.key_of(params)
            if key is not None:
                self._keys[key] = self._keys.get(key, 0) + 1
                names = tuple(params)
                if len(self._templates) < _TEMPLATES_KEPT and names not in self._templates:
                    self._templates[names] = [distributions[name] for name in names]
        self._refresh_up(node)

    def remove_pending(self, params: Mapping[str, Any]) -> None:
        """Take back a pending architecture added with ``add(..., pending=True)``."""
        node = self._find(params)
        if node is None or node.pending == 0:
            return
        node.pending -= 1
        key = self.key_of(params)
        if key is not None and self._keys.get(key):
            self._keys[key] -= 1
            if not self._keys[key]:
                del self._keys[key]
        self._refresh_up(node)

    def _refresh_up(self, node: _Node | None) -> None:
        # Every node on the path may have a new child or a newly known next decision.
        while node is not None:
            node.refresh()
            node = node.parent

    def _find(self, params: Mapping[str, Any]) -> _Node | None:
        node: _Node | None = self._root
        try:
            for key in params.items():
                node = node.children.get(key) if node is not None else None
        except TypeError:
            return None
        return node

    def evaluated_by(self, params: Mapping[str, Any]) -> int | None:
        """The lowest number of a finished trial that evaluated exactly these decisions."""
        node = self._find(params)
        return node.ended_by if node is not None and node.ended else None

    def contains(self, params: Mapping[str, Any]) -> bool:
        """Whether exactly these decisions (or an architecture with the same key) were evaluated
        or are pending.
        """
        node = self._find(params)
        if node is not None and (node.ended or node.pending):
            return True
        key = self.key_of(params)
        return key is not None and key in self._keys

    def exhausted_choices(self, params: Mapping[str, Any], name: str, values: Iterable[Any]) -> set[Any]:
        """Of ``values`` for decision ``name`` after ``params``, those that lead only to seen ones."""
        node = self._find(params)
        result = set()
        for value in values:
            try:
                child = node.children.get((name, value)) if node is not None else None
            except TypeError:
                continue
            if child is not None and child.exhausted:
                result.add(value)
            elif self._keys and self._only_seen_keys_after({**params, name: value}):
                result.add(value)
        return result

    def _only_seen_keys_after(self, prefix: dict[str, Any]) -> bool:
        """Whether every completion of ``prefix`` has a key evaluated or pending.

        A prefix that is already a whole architecture with such a key is its own completion (where
        a choice decides which decisions follow, as in a space that skips forced ones, no shape
        need match). Else completions follow the shape of an evaluated architecture that starts
        with the same decision names (the space asks the same decisions after the same earlier
        ones); all of them are checked when there are few, else a fixed sample. With no such shape,
        or a completion that is not a whole architecture, nothing is known and the answer is no.
        """
        key = self.key_of(prefix)
        if key is not None and key in self._keys:
            return True
        names = tuple(prefix)
        for shape, distributions in self._templates.items():
            if shape[: len(names)] != names:
                continue
            rest = list(zip(shape[len(names) :], distributions[len(names) :], strict=True))
            choices = []
            for _, distribution in rest:
                actions = ActionSpace(distribution, self._bins)
                if not actions.exact:
                    return False
                choices.append(actions.values())
            total = math.prod(len(c) for c in choices)
            if total <= _LOOKAHEAD_BUDGET:
                completions: Iterable[tuple[Any, ...]] = itertools.product(*choices)
            else:
                rng = np.random.default_rng(zlib.crc32(repr(sorted(prefix.items(), key=str)).encode()))
                completions = (tuple(c[int(rng.integers(len(c)))] for c in choices) for _ in range(_LOOKAHEAD_BUDGET))
            for completion in completions:
                whole = {**prefix, **{name: value for (name, _), value in zip(rest, completion, strict=True)}}
                key = self.key_of(whole)
                if key is None or key not in self._keys:
                    return False
            return True
        return False
