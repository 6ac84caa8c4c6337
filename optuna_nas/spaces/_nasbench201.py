"""The NAS-Bench-201 cell (Dong & Yang, ICLR 2020): six edges, five ops each."""

from __future__ import annotations

import dataclasses
from typing import Any

from optuna_nas.spaces._base import ArchitectureGraph
from optuna_nas.spaces._base import ArchitectureSpec
from optuna_nas.spaces._base import Decider
from optuna_nas.spaces._base import Space
from optuna_nas.spaces._registry import register_op_name
from optuna_nas.spaces._registry import register_space
from optuna_nas.spaces._registry import register_spec

#: The five NAS-Bench-201 ops, in the benchmark's order.
NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")

for _op in NB201_OPS:
    register_op_name(_op)

#: The six edges as (to_node, from_node), in the order of the benchmark's arch strings.
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))


def edge_param_name(to_node: int, from_node: int) -> str:
    """The decision name of an edge, e.g. ``edge_0_to_1``."""
    return f"edge_{from_node}_to_{to_node}"


@register_spec
@dataclasses.dataclass(frozen=True)
class NASBench201Spec(ArchitectureSpec):
    """A NAS-Bench-201 cell: one op per edge, in :data:`NB201_EDGES` order.

    The network around it is the benchmark's fixed skeleton: a 3x3 stem conv with 16 channels, three
    stages of 5 cells with 16, 32 and 64 channels, residual reduction blocks between stages, global
    average pooling and a linear classifier.
    """

    ops: tuple[str, ...]
    space = "nb201"

    def __post_init__(self) -> None:
        if len(self.ops) != len(NB201_EDGES):
            raise ValueError(f"ops must hold {len(NB201_EDGES)} op names, got {self.ops!r}.")
        for op in self.ops:
            if op not in NB201_OPS:
                raise ValueError(f"ops: unknown op {op!r}; known ops: {list(NB201_OPS)}.")

    @property
    def arch_str(self) -> str:
        """The benchmark's string form, ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``."""
        nodes: list[list[str]] = [[], [], []]
        for (to_node, from_node), op in zip(NB201_EDGES, self.ops, strict=True):
            nodes[to_node - 1].append(f"{op}~{from_node}")
        return "+".join("|" + "|".join(node) + "|" for node in nodes)

    @classmethod
    def from_arch_str(cls, arch: str) -> NASBench201Spec:
        """Parse the benchmark's string form.

        Raises:
            ValueError: ``arch`` is not a NAS-Bench-201 cell string.
        """
        ops: dict[tuple[int, int], str] = {}
        try:
            for to_node, node in enumerate(arch.split("+"), start=1):
                for item in node.strip("|").split("|"):
                    op, from_node = item.split("~")
                    ops[(to_node, int(from_node))] = op
            return cls(ops=tuple(ops[edge] for edge in NB201_EDGES))
        except (KeyError, ValueError, AttributeError) as error:
            raise ValueError(f"arch: {arch!r} is not a NAS-Bench-201 cell string ({error}).") from None

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "ops": list(self.ops), "arch": self.arch_str}

    def graph(self) -> ArchitectureGraph:
        edges = tuple((src, dst, op) for (dst, src), op in zip(NB201_EDGES, self.ops, strict=True) if op != "none")
        return ArchitectureGraph(
            nodes=("node 0 (in)", "node 1", "node 2", "node 3 (out)"), edges=edges, title="NAS-Bench-201 cell"
        )

    def summary(self) -> str:
        return self.arch_str

    def canonical_dict(self) -> dict[str, Any]:
        """The function the cell computes, as nasbench prunes and hashes specs.

        An edge counts only if it lies on a path from the input (node 0) to the output (node 3)
        through edges other than ``none``: ops elsewhere are treated as ``none``. A node is the sum
        of its inputs, which is unordered, so each node is written as the sorted list of its
        ``op(input)`` terms; the output node's expression is the key. Cells whose output is cut off
        from the input all share one form.

        What the form leaves out: ops on dead edges still cost parameters and FLOPs, and a conv
        (ReLU-conv-BN) fed by a node cut off from the input adds BatchNorm's learned bias; trained
        networks of one form therefore differ in cost, and slightly in accuracy. For searches that
        trade accuracy against cost, leave the key out (the raw cells are then all distinct).
        """
        ops = dict(zip(NB201_EDGES, self.ops, strict=True))
        reaches_output = {3}
        for node in (2, 1, 0):
            if any(ops[(to, node)] != "none" and to in reaches_output for to in range(node + 1, 4)):
                reaches_output.add(node)
        expression: dict[int, str | None] = {0: "input"}
        for node in (1, 2, 3):
            terms = sorted(
                f"{ops[(node, source)]}({expression[source]})"
                for source in range(node)
                if ops[(node, source)] != "none" and expression[source] is not None and node in reaches_output
            )
            expression[node] = "+".join(terms) if terms else None
        return {"space": self.space, "function": expression[3]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NASBench201Spec:
        return cls(ops=tuple(data["ops"]))


@register_space
class NASBench201Space(Space):
    """The NAS-Bench-201 search space: 5 ** 6 = 15,625 cells.

    Decisions, in the benchmark's edge order: ``edge_0_to_1``, ``edge_0_to_2``, ``edge_1_to_2``,
    ``edge_0_to_3``, ``edge_1_to_3``, ``edge_2_to_3``, each one of :data:`NB201_OPS`.
    """

    name = "nb201"

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.name}

    def decide(self, decider: Decider) -> NASBench201Spec:
        return NASBench201Spec(
            ops=tuple(decider.categorical(edge_param_name(*edge), NB201_OPS) for edge in NB201_EDGES)
        )
