"""What a predictor reads of an architecture: its tokens and its named features.

An architecture is a spec of one of the package's spaces (anything with ``to_dict()``), the dict
``to_dict()`` returns, or a trial's params (``{name: value}``, define-by-run, any length). Specs are
read through their JSON form only, so this module depends on no space's code.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any
from typing import Protocol
from typing import TypeAlias
from typing import runtime_checkable


@runtime_checkable
class SupportsToDict(Protocol):
    """Anything with ``to_dict()``: every spec of :mod:`optuna_nas.spaces`."""

    def to_dict(self) -> dict[str, Any]: ...


#: A spec, a spec's ``to_dict()``, or a trial's params.
Architecture: TypeAlias = SupportsToDict | Mapping[str, Any]

#: The field that holds each known space's structure in its spec's ``to_dict()``.
_SPEC_FIELDS = {"nb201": "ops", "dag": "matrix", "chain": "layers", "cell": "blocks"}
#: Skeleton fields of cell and DAG specs: the same architecture in another skeleton is another network.
_SKELETONS = {"cell": ("cells_per_stage", "stages", "channels"), "dag": ("stem_channels", "stacks", "cells_per_stack")}
_NB201_NONE = "none"  # the NAS-Bench-201 op that cuts its edge


def read_architecture(architecture: Any, *, name: str = "architecture") -> tuple[str, Any]:
    """``(kind, data)``: a known space's name and its spec dict, or ``"params"`` and ``[(name, value), ...]``.

    A mapping is a spec dict when its ``space`` is a known space's and the field holding that
    space's structure is a list (a trial's param values are scalars, never lists). Anything else
    nested (a spec of another space) is flattened into ``outer/inner`` names.

    Raises:
        ValueError: ``architecture`` is none of these, or holds a value that is not a string, a
            finite number, a bool or ``None``; the message names ``name``.
    """
    if not isinstance(architecture, Mapping) and isinstance(architecture, SupportsToDict):
        architecture = architecture.to_dict()
    if not isinstance(architecture, Mapping):
        raise ValueError(
            f"{name} must be a spec (with to_dict()), a spec's to_dict() or a trial's params, got {architecture!r}."
        )
    kind = architecture.get("space")
    if isinstance(kind, str) and isinstance(architecture.get(_SPEC_FIELDS.get(kind, "")), (list, tuple)):
        return kind, architecture
    items = list(_flatten(architecture, prefix=""))
    for key, value in items:
        if not (value is None or isinstance(value, (str, bool)) or _is_finite_number(value)):
            raise ValueError(
                f"{name}[{key!r}] must be a string, a finite number, a bool or None, got {value!r} in {architecture!r}."
            )
    return "params", items


def architecture_tokens(architecture: Architecture) -> list[str]:
    """The architecture as a sequence of tokens, in the order its decisions are taken.

    - NAS-Bench-201: each edge with its op (``edge_0_to_1=nor_conv_3x3``, the spaces' decision
      names, so a spec and its trial's params give the same tokens), in the benchmark's edge order.
    - DAG (NAS-Bench-101) cells: the skeleton, then for each vertex after the input its op and
      the vertices feeding it (``op=conv3x3-bn-relu``, ``from=0``, ...; the output's op is ``output``).
    - Chains: per layer its type and settings (``type=conv``, ``kernel=3``, ``filters=32``, ``stride=1``).
    - Cells: the skeleton, then per block ``input=``, ``op=``, ``input=``, ``op=``.
    - Params: ``name=value`` in the order given (a sequence model reads the order: give params in
      one order everywhere, e.g. as the trial holds them); floats are written with 4 significant
      digits.

    Args:
        architecture: A spec, a spec's ``to_dict()``, or a trial's params.

    Raises:
        ValueError: ``architecture`` is not one of those.
    """
    kind, data = read_architecture(architecture)
    if kind == "params":
        return [f"{key}={_format(value)}" for key, value in data]
    try:
        return _spec_tokens(kind, data)
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        raise ValueError(f"architecture: a malformed {kind!r} spec dict ({error!r}): {dict(data)!r}.") from None


def _spec_tokens(kind: str, data: Mapping[str, Any]) -> list[str]:
    tokens = [f"{field}={data[field]}" for field in _SKELETONS.get(kind, ()) if field in data]
    if kind == "nb201":
        tokens += [f"edge_{source}_to_{target}={op}" for (source, target), op in _nb201_edges(data).items()]
    elif kind == "dag":
        matrix, ops = data["matrix"], data["ops"]
        for vertex in range(1, len(matrix)):
            tokens.append(f"op={ops[vertex]}")
            tokens += [f"from={source}" for source in range(vertex) if matrix[source][vertex]]
    elif kind == "chain":
        for layer in data["layers"]:
            tokens += [f"{field}={value}" for field, value in _layer_fields(layer)]
    else:  # cell
        for block in data["blocks"]:
            tokens += [f"input={block['input_a']}", f"op={block['op_a']}"]
            tokens += [f"input={block['input_b']}", f"op={block['op_b']}"]
    return tokens


def architecture_features(architecture: Architecture) -> dict[str, float]:
    """The architecture's nonzero features by name: what :class:`VectorEncoder` lays out as a vector.

    - NAS-Bench-201: one-hot of each edge's op (``edge_0_to_1=nor_conv_3x3``, the spaces' decision
      names); per op, how many edges on an input-to-output path hold it (``live/nor_conv_3x3``);
      path features (``path/nor_conv_3x3>skip_connect``: how many input-to-output paths carry those
      ops in that order); the number of paths and their shortest and longest length, and per op
      the fewest and most of it on one path (``path_min/...``, ``path_max/...``). A path never
      crosses a ``none`` edge, so edges cut off from the input or the output count only in the
      one-hot.
    - DAG (NAS-Bench-101) cells: the adjacency (``edge_2_to_out``; the output vertex is ``out``
      whatever the cell's size, so smaller cells are padded), one-hot of each vertex's op
      (``node_1=conv3x3-bn-relu``), vertex and edge counts, the same live-op and path features
      (a path is labelled by its inner vertices' ops,
      ``path/conv3x3-bn-relu>maxpool3x3``, or ``path/direct``), and the skeleton.
    - Chains: per layer, one-hot of its type and its settings as numbers (``layer_2/type=conv``,
      ``layer_2/kernel``); the depth; per type, how many layers have it (``count/conv``).
    - Cells: per block, one-hot of its inputs and ops (``block_1/op_a=sep_conv_3x3``); the block
      count; per op, how often it is used (``count/sep_conv_3x3``); how many blocks are the cell's
      output; the skeleton.
    - Params: strings and ``None`` one-hot (``name=value``), numbers and bools as numbers (``name``),
      and the number of params.

    Features of later layers or blocks are simply absent from a shorter architecture, which is how a
    fixed-length vector pads it. Zero-valued features are left out.

    Args:
        architecture: A spec, a spec's ``to_dict()``, or a trial's params.

    Raises:
        ValueError: ``architecture`` is not one of those.

    Example:
        >>> params = {"layer_0/type": "conv", "layer_0/filters": 32, "layer_1/type": "fc"}
        >>> architecture_features(params)
        {'layer_0/type=conv': 1.0, 'layer_0/filters': 32.0, 'layer_1/type=fc': 1.0, 'params': 3.0}
    """
    kind, data = read_architecture(architecture)
    features: dict[str, float] = {}
    if kind == "params":
        for key, value in data:
            if value is None or isinstance(value, str):
                _add(features, f"{key}={value}")
            else:
                _add(features, key, float(value))
        _add(features, "params", len(data))
        return features
    try:
        return _spec_features(kind, data)
    except (KeyError, IndexError, TypeError, AttributeError) as error:
        raise ValueError(f"architecture: a malformed {kind!r} spec dict ({error!r}): {dict(data)!r}.") from None


def _spec_features(kind: str, data: Mapping[str, Any]) -> dict[str, float]:
    features: dict[str, float] = {}
    for field in _SKELETONS.get(kind, ()):
        if field in data:
            _add(features, field, float(data[field]))
    if kind == "nb201":
        edges = _nb201_edges(data)
        for (source, target), op in edges.items():
            _add(features, f"edge_{source}_to_{target}={op}")
        cut = {edge for edge, op in edges.items() if op == _NB201_NONE}
        paths = _paths(4, [edge for edge in edges if edge not in cut])
        for edge in sorted({edge for path in paths for edge in path}):
            _add(features, f"live/{edges[edge]}")
        _add_path_features(features, [[edges[edge] for edge in path] for path in paths])
    elif kind == "dag":
        matrix, ops = data["matrix"], data["ops"]
        n = len(matrix)
        names = ["in", *(str(vertex) for vertex in range(1, n - 1)), "out"]
        links = [(i, j) for i in range(n) for j in range(i + 1, n) if matrix[i][j]]
        for i, j in links:
            _add(features, f"edge_{names[i]}_to_{names[j]}")
        for vertex in range(1, n - 1):
            _add(features, f"node_{vertex}={ops[vertex]}")
        _add(features, "vertices", n)
        _add(features, "edges", len(links))
        paths = _paths(n, links)
        for vertex in sorted({target for path in paths for _, target in path} - {n - 1}):
            _add(features, f"live/{ops[vertex]}")
        # A path's label is its inner vertices' ops; the bare input-to-output edge has none.
        _add_path_features(features, [[ops[target] for _, target in path[:-1]] for path in paths])
    elif kind == "chain":
        layers = data["layers"]
        for index, layer in enumerate(layers):
            for field, value in _layer_fields(layer):
                if field == "type":
                    _add(features, f"layer_{index}/type={value}")
                    _add(features, f"count/{value}")
                else:
                    _add(features, f"layer_{index}/{field}", float(value))
        _add(features, "layers", len(layers))
    else:  # cell
        blocks = data["blocks"]
        consumed = set()
        for index, block in enumerate(blocks):
            for half in ("a", "b"):
                _add(features, f"block_{index}/input_{half}={block[f'input_{half}']}")
                _add(features, f"block_{index}/op_{half}={block[f'op_{half}']}")
                _add(features, f"count/{block[f'op_{half}']}")
                consumed.add(block[f"input_{half}"])
        _add(features, "blocks", len(blocks))
        # Inputs 0 and 1 are the two previous cells; block j is input 2 + j.
        _add(features, "output_blocks", sum(2 + index not in consumed for index in range(len(blocks))))
    return features


def _flatten(data: Mapping[str, Any], *, prefix: str) -> Iterator[tuple[str, Any]]:
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            yield from _flatten(value, prefix=f"{name}/")
        elif isinstance(value, (list, tuple)):
            yield from _flatten({str(index): item for index, item in enumerate(value)}, prefix=f"{name}/")
        else:
            yield name, value


def _is_finite_number(value: Any) -> bool:
    try:
        return not isinstance(value, complex) and math.isfinite(value)
    except TypeError:
        return False


def _format(value: Any) -> str:
    if isinstance(value, float):
        return format(value, ".4g")
    return str(value)


def _add(features: dict[str, float], name: str, value: float = 1.0) -> None:
    if value:
        features[name] = features.get(name, 0.0) + float(value)


def _nb201_edges(data: Mapping[str, Any]) -> dict[tuple[int, int], str]:
    """``{(from_node, to_node): op}`` in the benchmark's edge order, from the spec's ``arch`` string."""
    arch = data.get("arch")
    if not isinstance(arch, str):
        raise ValueError(f"architecture: a NAS-Bench-201 spec dict needs its 'arch' string, got {dict(data)!r}.")
    edges: dict[tuple[int, int], str] = {}
    try:
        for target, node in enumerate(arch.split("+"), start=1):
            for item in node.strip("|").split("|"):
                op, source = item.split("~")
                edges[(int(source), target)] = op
    except ValueError:
        raise ValueError(f"architecture: {arch!r} is not a NAS-Bench-201 cell string.") from None
    return edges


def _layer_fields(layer: Mapping[str, Any]) -> list[tuple[str, Any]]:
    return [("type", layer["type"])] + [
        (field, layer[field]) for field in ("kernel", "filters", "stride", "units") if layer.get(field) is not None
    ]


def _paths(n: int, edges: Sequence[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Every path from vertex 0 to vertex ``n - 1`` along ``edges`` (each ``source < target``)."""
    outgoing: dict[int, list[int]] = {}
    for source, target in edges:
        outgoing.setdefault(source, []).append(target)
    paths: list[list[tuple[int, int]]] = []

    def walk(vertex: int, path: list[tuple[int, int]]) -> None:
        if vertex == n - 1:
            paths.append(path)
            return
        for target in sorted(outgoing.get(vertex, [])):
            walk(target, [*path, (vertex, target)])

    walk(0, [])
    return paths


def _add_path_features(features: dict[str, float], paths: Sequence[Sequence[str]]) -> None:
    """Path counts by label, the path count and lengths, and per op the fewest and most of it on one path."""
    for labels in paths:
        _add(features, "path/" + (">".join(labels) or "direct"))
    _add(features, "paths", len(paths))
    if not paths:
        return
    lengths = [len(labels) for labels in paths]
    _add(features, "path_length_min", min(lengths))
    _add(features, "path_length_max", max(lengths))
    ops = sorted({op for labels in paths for op in labels})
    for op in ops:
        counts = [list(labels).count(op) for labels in paths]
        _add(features, f"path_min/{op}", min(counts))
        _add(features, f"path_max/{op}", max(counts))
