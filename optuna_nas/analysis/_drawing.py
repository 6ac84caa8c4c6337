"""A picture of an architecture: its decisions drawn as a graph (matplotlib)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def _layer_label(layer: dict[str, Any]) -> str:
    if layer["type"] == "conv":
        stride = "/2" if layer["stride"] > 1 else ""
        return f"conv {layer['kernel']}x{layer['kernel']}{stride}\n{layer['filters']} filters"
    if layer["type"] == "fc":
        return f"fc {layer['units']}"
    return str(layer["type"]).replace("_", " ")


def _graph(spec: dict[str, Any]) -> tuple[list[str], list[tuple[int, int, str]], str]:
    """Nodes, labelled edges and a title for any spec dict."""
    kind = spec.get("space")
    if kind == "chain":
        nodes = ["input"] + [_layer_label(layer) for layer in spec["layers"]] + ["classifier"]
        return nodes, [(i, i + 1, "") for i in range(len(nodes) - 1)], "layer chain"
    if kind == "cell":
        blocks = spec["blocks"]
        nodes = ["cell k-2", "cell k-1"] + [f"block {j}" for j in range(len(blocks))]
        edges = []
        for j, block in enumerate(blocks):
            edges.append((block["input_a"], 2 + j, block["op_a"]))
            edges.append((block["input_b"], 2 + j, block["op_b"]))
        used = {b["input_a"] for b in blocks} | {b["input_b"] for b in blocks}
        nodes.append("output")
        edges += [(2 + j, len(nodes) - 1, "") for j in range(len(blocks)) if 2 + j not in used]
        title = f"cell of {len(blocks)} blocks, {spec['stages']} stages x {spec['cells_per_stage']} cells"
        return nodes, edges, title
    if kind == "nb201":
        order = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))
        edges = [(src, dst, op) for (dst, src), op in zip(order, spec["ops"], strict=True) if op != "none"]
        return ["node 0 (in)", "node 1", "node 2", "node 3 (out)"], edges, "NAS-Bench-201 cell"
    if kind == "dag":
        matrix, ops = spec["matrix"], spec["ops"]
        short = [str(op).removesuffix("-bn-relu") for op in ops]  # every conv of the cell is conv-BN-ReLU
        nodes = [op if v in (0, len(ops) - 1) else f"{v}: {op}" for v, op in enumerate(short)]
        edges = [(i, j, "") for i, row in enumerate(matrix) for j, on in enumerate(row) if on]
        title = f"NAS-Bench-101 cell, {spec['stacks']} stacks x {spec['cells_per_stack']} cells"
        return nodes, edges, title
    raise ValueError(f"spec['space'] must be chain, cell, nb201 or dag, got {kind!r}.")


def draw_architecture(spec: dict[str, Any]) -> Figure:
    """Draw a spec (as from ``spec.to_dict()``) as a left-to-right graph; returns the figure.

    Raises:
        ValueError: The spec names no known space.
    """
    from matplotlib.figure import Figure

    nodes, edges, title = _graph(spec)
    width = max(6.0, 1.7 * len(nodes))
    figure = Figure(figsize=(width, 3.2), dpi=100)
    axes = figure.add_subplot()
    xs = list(range(len(nodes)))
    for i, label in enumerate(nodes):
        axes.text(
            xs[i],
            0,
            label,
            ha="center",
            va="center",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.4", "facecolor": "#e8f0fe", "edgecolor": "#3367d6"},
        )
    for k, (src, dst, label) in enumerate(edges):
        bend = 0.0 if dst - src == 1 else 0.25 + 0.1 * (k % 3)
        axes.annotate(
            "",
            xy=(xs[dst] - 0.3, 0),
            xytext=(xs[src] + 0.3, 0),
            arrowprops={"arrowstyle": "->", "color": "#555555", "connectionstyle": f"arc3,rad={-bend}"},
        )
        if label:
            height = 0.12 + (bend * (dst - src) / 2 if bend else 0)
            axes.text((xs[src] + xs[dst]) / 2, height, label, ha="center", fontsize=7, color="#b03a2e")
    axes.set_xlim(-0.8, len(nodes) - 0.2)
    axes.set_ylim(-0.6, 1.2)
    axes.axis("off")
    axes.set_title(title, fontsize=10)
    return figure
