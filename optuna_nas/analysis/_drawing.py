"""A picture of any architecture: its spec's graph (:meth:`~optuna_nas.spaces.ArchitectureSpec.graph`) drawn
with matplotlib.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from optuna_nas.spaces import ArchitectureSpec


def draw_architecture(spec: ArchitectureSpec | dict[str, Any]) -> Figure:
    """Draw a spec, or its ``to_dict()`` form, as a left-to-right graph of its
    :meth:`~optuna_nas.spaces.ArchitectureSpec.graph`; returns the figure.

    Raises:
        ValueError: A dict names no registered spec type (:func:`optuna_nas.spaces.register_spec`).
    """
    from matplotlib.figure import Figure

    from optuna_nas.spaces import ArchitectureSpec
    from optuna_nas.spaces import spec_from_dict

    if not isinstance(spec, ArchitectureSpec):
        spec = spec_from_dict(spec)
    graph = spec.graph()
    nodes, edges, title = graph.nodes, graph.edges, graph.title
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
