"""Count the distinct NAS-Bench-101 cells with the project's hash, and check the space reaches them all.

NAS-Bench-101 (Ying et al., 2019) states that its space - DAGs of at most 7 vertices and 9 edges,
the inner vertices labelled with one of 3 ops - holds exactly 423,624 computationally unique
modules. Two counts, one thread:

* ``enumerate``: nasbench's own procedure (its ``generate_graphs.py``). For every vertex count V
  from 2 to ``--max-nodes``, every upper-triangular 0/1 matrix with at most ``--max-edges`` edges
  and every vertex on an input-to-output path, and every labelling of its inner vertices: build
  the ``DAGCellSpec`` and collect its ``module_hash``. Prints, per V, the matrices kept, the
  labelled cells and the distinct hashes so far.
* ``walk``: every leaf of ``DAGCellSpace(max_nodes=--walk-nodes)``'s define-by-run decision tree
  (every sequence of answers the space can be given), its spec's hash collected. The set must be
  the one the enumeration found for that node limit: the space reaches every cell, and only valid
  ones. The walk grows fast (about 222,000 leaves at 6 nodes), so its limit is set apart.

    python benchmarks/nasbench101_count.py [--max-nodes 7] [--max-edges 9] [--walk-nodes 5]
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Sequence
from typing import Any

from optuna_nas.spaces import NB101_OPS
from optuna_nas.spaces import DAGCellSpace
from optuna_nas.spaces import DAGCellSpec
from optuna_nas.spaces import Decider


def enumerate_cells(max_nodes: int, max_edges: int, ops: Sequence[str]) -> dict[int, set[str]]:
    """The distinct hashes of the cells of at most V vertices, for every V up to ``max_nodes``."""
    seen: set[str] = set()
    by_limit: dict[int, set[str]] = {}
    start, cpu = time.perf_counter(), time.process_time()
    print(f"{'V':>2} {'matrices':>9} {'labelled cells':>15} {'distinct, V or fewer':>21} {'seconds':>8} {'cpu s':>8}")
    for n in range(2, max_nodes + 1):
        # Edge k is (x, y) in nasbench's numbering: column by column.
        edges = [(x, y) for y in range(1, n) for x in range(y)]
        row_mask, column_mask = [0] * n, [0] * n
        for k, (x, y) in enumerate(edges):
            row_mask[x] |= 1 << k
            column_mask[y] |= 1 << k
        matrices = labelled = 0
        for bits in range(1 << len(edges)):
            if bits.bit_count() > max_edges:
                continue
            # Every vertex on an input-to-output path: each but the output has an out-edge, each but
            # the input an in-edge.
            if not all(bits & row_mask[x] for x in range(n - 1)) or not all(bits & column_mask[y] for y in range(1, n)):
                continue
            matrices += 1
            matrix = [[0] * n for _ in range(n)]
            for k, (x, y) in enumerate(edges):
                if bits >> k & 1:
                    matrix[x][y] = 1
            for labels in itertools.product(ops, repeat=n - 2):
                labelled += 1
                seen.add(DAGCellSpec(matrix=matrix, ops=("input", *labels, "output")).module_hash)
        by_limit[n] = set(seen)
        print(
            f"{n:>2} {matrices:>9,} {labelled:>15,} {len(seen):>21,} {time.perf_counter() - start:>8.1f} "
            f"{time.process_time() - cpu:>8.1f}",
            flush=True,
        )
    return by_limit


class _Walker(Decider):
    """Answers with the choice indices of ``path``, then the first choice, recording each decision's size."""

    def __init__(self, path: list[int]) -> None:
        self.path = path
        self.sizes: list[int] = []

    def categorical(self, name: str, choices: Sequence[Any]) -> Any:
        depth = len(self.sizes)
        if depth == len(self.path):
            self.path.append(0)
        self.sizes.append(len(choices))
        return choices[self.path[depth]]

    def integer(self, name: str, low: int, high: int) -> int:
        raise AssertionError(f"{name}: DAGCellSpace asks no integer decisions")


def walk_space(space: DAGCellSpace) -> tuple[int, set[str]]:
    """Every leaf of the space's decision tree: how many, and their specs' distinct hashes."""
    path: list[int] = []
    leaves = 0
    seen: set[str] = set()
    while True:
        walker = _Walker(path)
        spec = space.decide(walker)
        leaves += 1
        assert spec.num_edges <= space.max_edges and spec == spec.pruned()
        seen.add(spec.module_hash)
        # The next leaf: the deepest decision with a choice left takes its next one.
        path = walker.path[: len(walker.sizes)]
        while path and path[-1] == walker.sizes[len(path) - 1] - 1:
            path.pop()
        if not path:
            return leaves, seen
        path[-1] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-nodes", type=int, default=7, help="most vertices of the enumerated cells")
    parser.add_argument("--max-edges", type=int, default=9, help="most edges of a cell")
    parser.add_argument("--walk-nodes", type=int, default=5, help="node limit of the walk of the space (0: no walk)")
    args = parser.parse_args()
    if args.walk_nodes > args.max_nodes:
        parser.error("--walk-nodes must be <= --max-nodes: the walk is checked against the enumeration")

    print(f"enumerate: up to {args.max_nodes} vertices, {args.max_edges} edges, ops {list(NB101_OPS)}")
    by_limit = enumerate_cells(args.max_nodes, args.max_edges, NB101_OPS)
    print(f"distinct cells up to {args.max_nodes} vertices: {len(by_limit[args.max_nodes]):,}")
    if args.max_nodes == 7 and args.max_edges == 9:
        print("NAS-Bench-101 states 423,624")

    if args.walk_nodes >= 2:
        space = DAGCellSpace(max_nodes=args.walk_nodes, max_edges=args.max_edges)
        start, cpu = time.perf_counter(), time.process_time()
        leaves, seen = walk_space(space)
        same = seen == by_limit[args.walk_nodes]
        print(
            f"walk: DAGCellSpace(max_nodes={args.walk_nodes}, max_edges={args.max_edges}): {leaves:,} decision "
            f"sequences, {len(seen):,} distinct cells, {'the same set as' if same else 'NOT the set of'} the "
            f"enumeration ({time.perf_counter() - start:.1f} s, {time.process_time() - cpu:.1f} s of CPU)"
        )


if __name__ == "__main__":
    main()
