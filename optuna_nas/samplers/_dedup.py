"""Which choices would only lead back to architectures already evaluated.

Evaluated trials form a trie of their decisions, in the order they were taken. A node (a prefix of
decisions) is exhausted when a trial ended there, or when the decision that follows it has finitely
many choices and every one leads to an exhausted node. The space asks the same next decision after
the same earlier decisions, so the decision after a prefix is known from any trial that shares it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from optuna.distributions import BaseDistribution

from optuna_nas.samplers._actions import ActionSpace


class _Node:
    __slots__ = ("children", "ended", "next_size", "exhausted")

    def __init__(self) -> None:
        self.children: dict[Any, _Node] = {}
        self.ended = False
        self.next_size: int | None = None  # choices of the next decision, if finite and known
        self.exhausted = False


class EvaluatedTrie:
    """The decisions of evaluated trials, to tell which choices reach only seen architectures."""

    def __init__(self, trials: Iterable[tuple[Mapping[str, Any], Mapping[str, BaseDistribution]]], bins: int) -> None:
        self._root = _Node()
        for params, distributions in trials:
            node = self._root
            try:
                for name, value in params.items():
                    actions = ActionSpace(distributions[name], bins)
                    node.next_size = actions.size if actions.exact else None
                    node = node.children.setdefault((name, value), _Node())
                node.ended = True
            except TypeError:  # an unhashable value: such trials cannot be compared
                continue
        _mark_exhausted(self._root)

    def contains(self, params: Mapping[str, Any]) -> bool:
        """Whether a trial with exactly these decisions, in this order, was evaluated."""
        node = self._root
        try:
            for key in params.items():
                node = node.children.get(key)  # type: ignore[assignment]
                if node is None:
                    return False
        except TypeError:
            return False
        return node.ended

    def exhausted_choices(self, params: Mapping[str, Any], name: str, values: Iterable[Any]) -> set[Any]:
        """Of ``values`` for decision ``name`` after ``params``, those that lead only to seen ones."""
        node = self._root
        for key in params.items():
            node = node.children.get(key)  # type: ignore[assignment]
            if node is None:
                return set()
        result = set()
        for value in values:
            child = node.children.get((name, value))
            if child is not None and child.exhausted:
                result.add(value)
        return result


def _mark_exhausted(root: _Node) -> None:
    order, stack = [], [root]
    while stack:  # iterative post-order: deep spaces must not hit the recursion limit
        node = stack.pop()
        order.append(node)
        stack.extend(node.children.values())
    for node in reversed(order):
        if node.ended:
            node.exhausted = True
        elif node.next_size is not None and len(node.children) >= node.next_size:
            node.exhausted = all(child.exhausted for child in node.children.values())
