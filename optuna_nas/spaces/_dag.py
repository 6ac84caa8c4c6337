"""NAS-Bench-101 cells (Ying et al., ICML 2019): a DAG of at most 7 nodes and 9 edges, one op per node."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from optuna_nas._validation import check_int
from optuna_nas.spaces._base import ArchitectureGraph
from optuna_nas.spaces._base import ArchitectureSpec
from optuna_nas.spaces._base import Decider
from optuna_nas.spaces._base import Space
from optuna_nas.spaces._base import _RecordingDecider
from optuna_nas.spaces._registry import check_op_names
from optuna_nas.spaces._registry import register_op_name
from optuna_nas.spaces._registry import register_space
from optuna_nas.spaces._registry import register_spec

#: The three NAS-Bench-101 ops, by the benchmark's names and in its order (which its hash labels follow).
NB101_OPS = ("conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3")
for _op in NB101_OPS:
    register_op_name(_op)
INPUT = "input"
OUTPUT = "output"


def edge_param_name(from_node: int, to_node: int) -> str:
    """The decision name of an edge, e.g. ``edge_0_to_3``."""
    return f"edge_{from_node}_to_{to_node}"


def op_param_name(node: int) -> str:
    """The decision name of a node's op, e.g. ``node_3/op``."""
    return f"node_{node}/op"


def graph_hash(matrix: Sequence[Sequence[int]], labels: Sequence[Any]) -> str:
    """An isomorphism-invariant MD5 fingerprint of a labelled DAG, computed as nasbench's ``hash_module``.

    Each vertex starts from the hash of ``(out-degree, in-degree, label)``; then, as many times as
    there are vertices, takes the hash of its sorted in-neighbour hashes, its sorted out-neighbour
    hashes and its own. The fingerprint hashes the sorted vertex hashes. Isomorphic graphs always
    share it; nasbench checked that no two non-isomorphic graphs of its space (7 vertices, 9 edges,
    3 ops) do.

    Args:
        matrix: Square upper-triangular 0/1 adjacency matrix; ``matrix[i][j]`` is the edge ``i -> j``.
        labels: One label per vertex (NAS-Bench-101 uses -1 for the input, -2 for the output and the
            op's index in :data:`NB101_OPS` for the others).
    """
    n = len(matrix)
    sources = [[w for w in range(n) if matrix[w][v]] for v in range(n)]
    targets = [[w for w in range(n) if matrix[v][w]] for v in range(n)]
    hashes = [
        hashlib.md5(str((len(targets[v]), len(sources[v]), labels[v])).encode("utf-8")).hexdigest() for v in range(n)
    ]
    for _ in range(n):
        hashes = [
            hashlib.md5(
                (
                    "".join(sorted(hashes[w] for w in sources[v]))
                    + "|"
                    + "".join(sorted(hashes[w] for w in targets[v]))
                    + "|"
                    + hashes[v]
                ).encode("utf-8")
            ).hexdigest()
            for v in range(n)
        ]
    return hashlib.md5(str(sorted(hashes)).encode("utf-8")).hexdigest()


def live_vertices(matrix: Sequence[Sequence[int]]) -> list[int]:
    """The vertices on some path from the input (vertex 0) to the output (the last vertex), in order.

    Empty when no path joins them.
    """
    n = len(matrix)
    from_input = [False] * n
    from_input[0] = True
    for v in range(1, n):
        from_input[v] = any(from_input[u] and matrix[u][v] for u in range(v))
    to_output = [False] * n
    to_output[n - 1] = True
    for v in range(n - 2, -1, -1):
        to_output[v] = any(to_output[w] and matrix[v][w] for w in range(v + 1, n))
    if not to_output[0]:
        return []
    return [v for v in range(n) if from_input[v] and to_output[v]]


@register_spec
@dataclasses.dataclass(frozen=True)
class DAGCellSpec(ArchitectureSpec):
    """A NAS-Bench-101 cell (its adjacency matrix and one op per vertex) and the skeleton it is stacked in.

    Vertex 0 is the input and the last vertex the output (``ops`` names them ``input`` and
    ``output``); ``matrix[i][j] = 1`` is an edge ``i -> j`` (upper triangular, so the graph is a
    DAG). Inner vertices sum their inputs and apply their op; the output concatenates the inner
    vertices feeding it, plus a projection of the input if the input feeds it. Vertices off every
    input-to-output path compute nothing the output sees: :meth:`pruned` drops them, and the hash
    (:attr:`module_hash`, and so :attr:`spec_hash`) is that of the pruned graph, the same for
    isomorphic cells.

    The network (:mod:`optuna_nas.models`) is NAS-Bench-101's skeleton: a 3x3 conv-BN-ReLU stem of
    ``stem_channels``, then ``stacks`` stacks of ``cells_per_stack`` cells with a 2x2 max-pool
    halving the resolution and the channels doubling between stacks, global average pooling and a
    linear classifier. The benchmark is ``stem_channels=128, stacks=3, cells_per_stack=3``.

    Args:
        matrix: Square 0/1 upper-triangular matrix (nested sequences, or anything with ``tolist()``).
        ops: One name per vertex: ``input``, the inner ops, ``output``.
        stem_channels: Channels of the stem and of the first stack.
        stacks: Stacks of cells.
        cells_per_stack: Cells in each stack.

    Raises:
        ValueError: A field is malformed, or no path joins the input to the output; the message
            names the field.

    Example:
        >>> spec = DAGCellSpec(
        ...     matrix=[[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
        ...     ops=["input", "conv3x3-bn-relu", "maxpool3x3", "output"],
        ... )
        >>> swapped = DAGCellSpec(
        ...     matrix=[[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]],
        ...     ops=["input", "maxpool3x3", "conv3x3-bn-relu", "output"],
        ... )
        >>> spec.module_hash == swapped.module_hash  # the same cell, its two branches numbered the other way
        True
    """

    matrix: tuple[tuple[int, ...], ...]
    ops: tuple[str, ...]
    stem_channels: int = 16
    stacks: int = 3
    cells_per_stack: int = 1
    space = "dag"

    def __post_init__(self) -> None:
        matrix = _check_matrix(self.matrix)
        n = len(matrix)
        ops = self.ops.tolist() if hasattr(self.ops, "tolist") else self.ops
        if isinstance(ops, str) or not isinstance(ops, Sequence) or len(ops) != n:
            raise ValueError(f"ops must hold one op name per vertex ({n}), got {self.ops!r}.")
        if ops[0] != INPUT or ops[-1] != OUTPUT:
            raise ValueError(f"ops must start with {INPUT!r} and end with {OUTPUT!r}, got {list(ops)!r}.")
        for index in range(1, n - 1):
            op = ops[index]
            if not isinstance(op, str) or not op or op in (INPUT, OUTPUT):
                raise ValueError(f"ops[{index}] must be the name of an op, got {op!r}.")
        object.__setattr__(self, "matrix", matrix)
        object.__setattr__(self, "ops", tuple(ops))
        check_int("stem_channels", self.stem_channels, minimum=1)
        check_int("stacks", self.stacks, minimum=1)
        check_int("cells_per_stack", self.cells_per_stack, minimum=1)
        live = live_vertices(matrix)
        if not live:
            raise ValueError(f"matrix: no path joins the input (vertex 0) to the output (vertex {n - 1}).")
        fan_in = sum(matrix[v][n - 1] for v in live[1:-1])
        if self.stem_channels < fan_in:
            # The output's channels are split among the vertices feeding it: each needs one.
            raise ValueError(
                f"stem_channels must be >= {fan_in}, the inner vertices feeding the output, got {self.stem_channels!r}."
            )

    @property
    def num_vertices(self) -> int:
        return len(self.matrix)

    @property
    def num_edges(self) -> int:
        return sum(map(sum, self.matrix))

    def pruned(self) -> DAGCellSpec:
        """The same cell without the vertices off every input-to-output path (as nasbench prunes)."""
        live = live_vertices(self.matrix)
        if len(live) == self.num_vertices:
            return self
        return dataclasses.replace(
            self,
            matrix=tuple(tuple(self.matrix[i][j] for j in live) for i in live),
            ops=tuple(self.ops[v] for v in live),
        )

    @functools.cached_property
    def module_hash(self) -> str:
        """The isomorphism-invariant hash of the pruned cell (:func:`graph_hash`).

        With the NAS-Bench-101 op names it is nasbench's own hash of the cell (``ModelSpec.hash_spec``
        with the benchmark's op order), the key of its dataset; other op names are labelled by name.
        """
        spec = self.pruned()
        labels: list[Any] = [-1, *(_label(op) for op in spec.ops[1:-1]), -2]
        return graph_hash(spec.matrix, labels)

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "matrix": [list(row) for row in self.matrix],
            "ops": list(self.ops),
            "stem_channels": self.stem_channels,
            "stacks": self.stacks,
            "cells_per_stack": self.cells_per_stack,
            "module_hash": self.module_hash,
        }

    def canonical_dict(self) -> dict[str, Any]:
        return {
            "space": self.space,
            "module_hash": self.module_hash,
            "stem_channels": self.stem_channels,
            "stacks": self.stacks,
            "cells_per_stack": self.cells_per_stack,
        }

    def summary(self) -> str:
        """E.g. ``4 nodes, 4 edges: 1 conv3x3-bn-relu <- in; 2 maxpool3x3 <- in; out <- 1,2``."""
        n = self.num_vertices
        parts = []
        for v in range(1, n):
            sources = ",".join("in" if u == 0 else str(u) for u in range(v) if self.matrix[u][v])
            name = "out" if v == n - 1 else f"{v} {self.ops[v]}"
            parts.append(f"{name} <- {sources or '-'}")
        return f"{n} nodes, {self.num_edges} edges: " + "; ".join(parts)

    def graph(self) -> ArchitectureGraph:
        short = [op.removesuffix("-bn-relu") for op in self.ops]  # every conv of the cell is conv-BN-ReLU
        last = len(short) - 1
        nodes = tuple(op if v in (0, last) else f"{v}: {op}" for v, op in enumerate(short))
        edges = tuple((i, j, "") for i, row in enumerate(self.matrix) for j, on in enumerate(row) if on)
        title = f"NAS-Bench-101 cell, {self.stacks} stacks x {self.cells_per_stack} cells"
        return ArchitectureGraph(nodes=nodes, edges=edges, title=title)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DAGCellSpec:
        return cls(
            matrix=data["matrix"],
            ops=data["ops"],
            stem_channels=data.get("stem_channels", 16),
            stacks=data.get("stacks", 3),
            cells_per_stack=data.get("cells_per_stack", 1),
        )


def _label(op: str) -> int | str:
    # nasbench labels its ops by their index in the benchmark's op list; keeping that makes the hash
    # its dataset's key.
    return NB101_OPS.index(op) if op in NB101_OPS else op


def _check_matrix(matrix: Any) -> tuple[tuple[int, ...], ...]:
    rows = matrix.tolist() if hasattr(matrix, "tolist") else matrix
    if isinstance(rows, (str, bytes)) or not isinstance(rows, Sequence) or len(rows) < 2:
        raise ValueError(f"matrix must be a square matrix of at least 2 vertices, got {matrix!r}.")
    n = len(rows)
    checked = []
    for i, row in enumerate(rows):
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or len(row) != n:
            raise ValueError(f"matrix must be square ({n} x {n}); row {i} is {row!r}.")
        for j, value in enumerate(row):
            if isinstance(value, float) or value not in (0, 1):
                raise ValueError(f"matrix[{i}][{j}] must be 0 or 1, got {value!r}.")
            if value and j <= i:
                raise ValueError(
                    f"matrix must be upper triangular (edges i -> j with i < j), got matrix[{i}][{j}] = 1."
                )
        checked.append(tuple(int(value) for value in row))
    return tuple(checked)


@register_space
class DAGCellSpace(Space):
    """NAS-Bench-101 cells: a DAG of up to ``max_nodes`` nodes and ``max_edges`` edges, one op per inner node.

    Paper: https://arxiv.org/abs/1902.09635

    Node 0 is the input and node ``max_nodes - 1`` the output. Decisions, in order:

    * ``edge_<i>_to_<j>`` (0 or 1) for the edges ``i -> j``, node by node: the inputs of node ``j``
      once those of every earlier node are decided, the nearest first (``0->1``, ``1->2``,
      ``0->2``, ``2->3``, ``1->3``, ``0->3``, ...). An edge whose answer is forced is not asked:
      it is on when the input could no longer reach the output within ``max_edges`` without it, and
      off when it can lie on no input-to-output path within the edges left (the budget is spent, its
      source can no longer be reached from the input, or its target can no longer reach the output
      in time), since it would be pruned anyway.
    * ``node_<v>/op`` (one of ``ops``) for each inner node on an input-to-output path, in order;
      nodes off every path are dropped, so their op is never asked. With a single op, nothing is asked.

    The spec (:class:`DAGCellSpec`) is the pruned cell, so every spec is valid: the input reaches the
    output with at most ``max_edges`` edges. Equal cells up to isomorphism share
    :attr:`~DAGCellSpec.spec_hash`, so ``dedup_key=space.dedup_key`` makes a sampler treat them as
    one. With the defaults the space holds NAS-Bench-101's 423,624 distinct cells
    (``benchmarks/nasbench101_count.py`` enumerates them).

    Args:
        max_nodes: Most nodes of a cell, the input and output included (NAS-Bench-101: 7).
        max_edges: Most edges of a cell (NAS-Bench-101: 9).
        ops: Op names the inner nodes choose from, among :func:`~optuna_nas.spaces.available_op_names`
            (the built-in ops and those added with :func:`optuna_nas.models.register_op`).
        stem_channels: Channels of the stem and the first stack (NAS-Bench-101: 128; the default
            suits small images on a CPU). At least ``max_nodes - 2``.
        stacks: Stacks of cells, with down-sampling and channel doubling between them (NAS-Bench-101: 3).
        cells_per_stack: Cells per stack (NAS-Bench-101: 3).

    Raises:
        ValueError: An argument is out of range or malformed; the message names it.

    Example:
        >>> import optuna
        >>> space = DAGCellSpace()  # NAS-Bench-101's cells; DAGCellSpace.nasbench101() for its skeleton too
        >>> trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        >>> spec = space.suggest(trial)
        >>> spec.num_vertices <= 7 and spec.num_edges <= 9 and spec == space.spec_from_params(trial.params)
        True
    """

    name = "dag"

    def __init__(
        self,
        *,
        max_nodes: int = 7,
        max_edges: int = 9,
        ops: Sequence[str] = NB101_OPS,
        stem_channels: int = 16,
        stacks: int = 3,
        cells_per_stack: int = 1,
    ) -> None:
        self.max_nodes = check_int("max_nodes", max_nodes, minimum=2)
        self.max_edges = check_int("max_edges", max_edges, minimum=1)
        if isinstance(ops, Sequence) and not isinstance(ops, str) and (INPUT in ops or OUTPUT in ops):
            raise ValueError(f"ops must hold op names other than {INPUT!r} and {OUTPUT!r}, got {list(ops)!r}.")
        self.ops = check_op_names(ops)
        self.stem_channels = check_int("stem_channels", stem_channels, minimum=max(1, self.max_nodes - 2))
        self.stacks = check_int("stacks", stacks, minimum=1)
        self.cells_per_stack = check_int("cells_per_stack", cells_per_stack, minimum=1)
        # A node's inputs are all decided before its outputs, so whether it can be reached is known
        # when its outputs are asked. The nearest input first: with the input's own edge last, random
        # answers spread over cells of every size (the other way round, many are the bare input-output
        # edge).
        self._edges = [(i, j) for j in range(1, self.max_nodes) for i in range(j - 1, -1, -1)]
        self._decision_names = {edge_param_name(i, j) for i, j in self._edges} | {
            op_param_name(v) for v in range(1, self.max_nodes - 1)
        }

    @classmethod
    def nasbench101(cls) -> DAGCellSpace:
        """The benchmark's space and skeleton: 7 nodes, 9 edges, its 3 ops, stem of 128, 3 stacks of 3 cells."""
        return cls(max_nodes=7, max_edges=9, ops=NB101_OPS, stem_channels=128, stacks=3, cells_per_stack=3)

    def to_dict(self) -> dict[str, Any]:
        return {
            "space": self.name,
            "max_nodes": self.max_nodes,
            "max_edges": self.max_edges,
            "ops": list(self.ops),
            "stem_channels": self.stem_channels,
            "stacks": self.stacks,
            "cells_per_stack": self.cells_per_stack,
        }

    def edge_options(self, matrix: Sequence[Sequence[int | None]], edge: tuple[int, int]) -> tuple[int, ...]:
        """The answers the edge ``i -> j`` may take after the decisions in ``matrix``.

        Args:
            matrix: ``max_nodes`` x ``max_nodes``: 0 or 1 for edges decided (or forced), ``None``
                for edges not decided yet (``edge`` itself is ignored).
            edge: ``(i, j)``.

        Returns:
            ``(0, 1)`` when both answers leave a valid cell that differs in this edge (the decision is
            asked), ``(1,)`` or ``(0,)`` when the answer is forced.
        """
        n = self.max_nodes
        i, j = edge
        used = sum(row.count(1) for row in matrix) - (matrix[i][j] == 1)
        remaining = self.max_edges - used
        # Shortest paths counting the edges still to add (an edge that is on costs 0, one not decided
        # 1), capped just above the budget: any longer path is as good as none.
        cap = remaining + 1
        to_node = [cap] * n
        to_node[0] = 0
        for v in range(1, n):
            best = cap
            for u in range(v):
                state = matrix[u][v]
                if state != 0 and (u != i or v != j):
                    cost = to_node[u] + (state is None)
                    best = cost if cost < best else best
            to_node[v] = best
        from_node = [cap] * n
        from_node[n - 1] = 0
        for v in range(n - 2, -1, -1):
            best = cap
            for w in range(v + 1, n):
                state = matrix[v][w]
                if state != 0 and (v != i or w != j):
                    cost = from_node[w] + (state is None)
                    best = cost if cost < best else best
            from_node[v] = best
        can_be_off = to_node[n - 1] <= remaining
        can_be_on = to_node[i] + 1 + from_node[j] <= remaining
        if can_be_on and can_be_off:
            return (0, 1)
        return (1,) if can_be_on else (0,)

    def dedup_key(self, params: Mapping[str, Any]) -> str | None:
        """The cell's :attr:`~DAGCellSpec.spec_hash` with any params the space does not ask, as JSON;
        ``None`` while ``params`` is not yet a whole cell.

        As :meth:`Space.dedup_key`, except that edges and ops of this space left over in ``params``
        but not asked (a sampler's plan copied from a cell where they were free) are not counted as
        other params: such params are the cell they decide.
        """
        decider = _RecordingDecider(params)
        try:
            spec = self.decide(decider)
        except ValueError:
            return None
        others = sorted(
            (name, repr(value))
            for name, value in params.items()
            if name not in decider.asked and name not in self._decision_names
        )
        return json.dumps([spec.spec_hash, others])

    def decide(self, decider: Decider) -> DAGCellSpec:
        n = self.max_nodes
        matrix: list[list[int | None]] = [[None if i < j else 0 for j in range(n)] for i in range(n)]
        for i, j in self._edges:
            options = self.edge_options(matrix, (i, j))
            matrix[i][j] = decider.categorical(edge_param_name(i, j), options) if len(options) > 1 else options[0]
        edges = tuple(tuple(int(value or 0) for value in row) for row in matrix)
        live = live_vertices(edges)
        chosen = {
            v: (decider.categorical(op_param_name(v), self.ops) if len(self.ops) > 1 else self.ops[0])
            for v in live[1:-1]
        }
        return DAGCellSpec(
            matrix=tuple(tuple(edges[i][j] for j in live) for i in live),
            ops=(INPUT, *(chosen[v] for v in live[1:-1]), OUTPUT),
            stem_channels=self.stem_channels,
            stacks=self.stacks,
            cells_per_stack=self.cells_per_stack,
        )
