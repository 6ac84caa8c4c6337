"""Layer-by-layer CNNs, as searched by MetaQNN (Baker et al., 2017) and Zoph & Le (2017)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

from optuna_nas._validation import check_bool
from optuna_nas._validation import check_int
from optuna_nas._validation import check_int_choices
from optuna_nas.spaces._base import ArchitectureGraph
from optuna_nas.spaces._base import ArchitectureSpec
from optuna_nas.spaces._base import Decider
from optuna_nas.spaces._base import Space
from optuna_nas.spaces._registry import register_space
from optuna_nas.spaces._registry import register_spec

CONV = "conv"
MAX_POOL = "max_pool"
AVG_POOL = "avg_pool"
FC = "fc"
STOP = "stop"
LAYER_TYPES = (CONV, MAX_POOL, AVG_POOL, FC)
POOL_TYPES = (MAX_POOL, AVG_POOL)


def representation_bucket(size: int) -> str:
    """MetaQNN's representation-size bucket: ``large`` (>= 8), ``medium`` (4..7), ``small`` (< 4)."""
    if size >= 8:
        return "large"
    if size >= 4:
        return "medium"
    return "small"


def conv_output_size(size: int, *, kernel: int, stride: int) -> int:
    """Spatial size after a conv with padding ``kernel // 2`` ('same' for odd kernels; an even
    kernel grows the map by one before the stride). The one place this is computed: the space's
    legality rules and the network builder both call it.
    """
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


def pool_output_size(size: int) -> int:
    """Spatial size after a 2x2, stride-2 pool that rounds up (a one-pixel side stays one pixel)."""
    return math.ceil((size - min(2, size)) / 2) + 1


def output_size(layer: ChainLayer, size: int) -> int:
    """Spatial size after ``layer`` (see :func:`conv_output_size`, :func:`pool_output_size`)."""
    if layer.type == CONV:
        assert layer.kernel is not None and layer.stride is not None  # ChainLayer checks a conv has them
        return conv_output_size(size, kernel=layer.kernel, stride=layer.stride)
    if layer.type in POOL_TYPES:
        return pool_output_size(size)
    return 1


@dataclasses.dataclass(frozen=True)
class ChainLayer:
    """One layer of a chain: a conv, a 2x2 stride-2 pool, or a fully connected layer.

    ``skips`` (convs only, from ``ChainSpace(skip_connections=True)``) lists the earlier conv layers,
    by their index in the chain, whose outputs are added to this layer's output (ENAS's macro skip
    connections). No skips is ``None``, so a chain without them is the same spec in either space.
    """

    type: str
    kernel: int | None = None
    filters: int | None = None
    stride: int | None = None
    units: int | None = None
    skips: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in LAYER_TYPES:
            raise ValueError(f"layer type must be one of {list(LAYER_TYPES)}, got {self.type!r}.")
        needs = {CONV: ("kernel", "filters", "stride"), FC: ("units",)}.get(self.type, ())
        for field in ("kernel", "filters", "stride", "units"):
            value = getattr(self, field)
            if field in needs:
                check_int(f"{self.type} layer {field}", value, minimum=1)
            elif value is not None:
                raise ValueError(f"a {self.type} layer takes no {field}, got {field}={value!r}.")
        if self.skips is not None:
            if self.type != CONV:
                raise ValueError(f"a {self.type} layer takes no skips, got skips={self.skips!r}.")
            skips = self.skips
            if isinstance(skips, (str, bytes)) or not isinstance(skips, Sequence):
                raise ValueError(f"skips must be a sequence of layer indices, got {skips!r}.")
            for index in skips:
                check_int("skips", index, minimum=0)
            if len(set(skips)) != len(skips):
                raise ValueError(f"skips must not repeat a layer, got {skips!r}.")
            # Sorted, as a tuple (JSON gives a list); none at all is None.
            object.__setattr__(self, "skips", tuple(sorted(int(i) for i in skips)) or None)

    def to_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in dataclasses.asdict(self).items() if v is not None}
        if self.skips is not None:
            data["skips"] = list(self.skips)
        return data

    def summary(self) -> str:
        """E.g. ``conv5x5/32s2``, ``conv3x3/16+skip0,2``, ``max_pool``, ``fc128``."""
        if self.type == CONV:
            assert self.stride is not None  # __post_init__ checks a conv has a stride
            stride = f"s{self.stride}" if self.stride > 1 else ""
            skips = "+skip" + ",".join(map(str, self.skips)) if self.skips else ""
            return f"conv{self.kernel}x{self.kernel}/{self.filters}{stride}{skips}"
        if self.type == FC:
            return f"fc{self.units}"
        return self.type


@register_spec
@dataclasses.dataclass(frozen=True)
class ChainSpec(ArchitectureSpec):
    """A chain of layers followed by a linear classifier.

    Fully connected layers, if any, come last: once one appears, only more of them may follow.
    """

    layers: tuple[ChainLayer, ...]
    space = "chain"

    def __post_init__(self) -> None:
        if len(self.layers) == 0:
            raise ValueError("layers must hold at least one layer, got ().")
        seen_fc = False
        for index, layer in enumerate(self.layers):
            if not isinstance(layer, ChainLayer):
                raise ValueError(f"layers[{index}] must be a ChainLayer, got {layer!r}.")
            if seen_fc and layer.type != FC:
                raise ValueError(f"layers[{index}] is a {layer.type} after a fully connected layer.")
            seen_fc = seen_fc or layer.type == FC
            for source in layer.skips or ():
                if source >= index or self.layers[source].type != CONV:
                    raise ValueError(f"layers[{index}].skips: {source} is not an earlier conv layer.")

    def to_dict(self) -> dict[str, Any]:
        return {"space": self.space, "layers": [layer.to_dict() for layer in self.layers]}

    def summary(self) -> str:
        return " > ".join(layer.summary() for layer in self.layers)

    def graph(self) -> ArchitectureGraph:
        nodes = ("input", *(_layer_label(layer) for layer in self.layers), "classifier")
        edges = [(i, i + 1, "") for i in range(len(nodes) - 1)]
        # Node 0 is the input, so layer i is node i + 1.
        edges += [
            (source + 1, index + 1, "skip") for index, layer in enumerate(self.layers) for source in layer.skips or ()
        ]
        return ArchitectureGraph(nodes=nodes, edges=tuple(edges), title="layer chain")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ChainSpec:
        return cls(layers=tuple(ChainLayer(**layer) for layer in data["layers"]))


def _layer_label(layer: ChainLayer) -> str:
    if layer.type == CONV:
        stride = "/2" if layer.stride and layer.stride > 1 else ""
        return f"conv {layer.kernel}x{layer.kernel}{stride}\n{layer.filters} filters"
    if layer.type == FC:
        return f"fc {layer.units}"
    return layer.type.replace("_", " ")


@register_space
class ChainSpace(Space):
    """Layer-by-layer CNNs with MetaQNN's legality rules.

    Each layer ``i`` asks ``layer_i/type`` (``conv``, ``max_pool``, ``avg_pool``, ``fc`` or ``stop``);
    a conv then asks ``layer_i/kernel``, ``layer_i/filters`` and ``layer_i/stride``, a fully
    connected layer ``layer_i/units``. Illegal choices are never offered, and the choices offered
    depend only on earlier decisions. Optuna gives each parameter name one distribution per study,
    so where the rules narrow a decision its name says how: ``layer_3/type/no_pool`` offers no pool,
    ``layer_5/kernel/upto_3`` only kernels up to 3. A decision with a single legal choice is not
    asked. The rules:

    * a pool never follows a pool, and needs a representation of at least ``min_pool_size``;
    * a conv kernel never exceeds the current representation size;
    * fully connected layers only come last (after one, only ``fc`` or ``stop``), at most
      ``max_fc_layers`` of them, and only once the representation is at most ``max_fc_input_size``;
    * ``stop`` is offered from the second layer on; after ``max_layers`` layers the chain ends.

    With ``skip_connections=True`` (ENAS's macro space, Pham et al. 2018), a conv layer ``i`` then
    asks ``layer_i/skip_j`` (0 or 1) for every earlier conv layer ``j``: the outputs of the chosen
    ones are added to its own, after average pooling to its size and a 1x1 convolution to its
    filters where they differ, and the sum is batch-normalised. Off by default: the decisions, the
    specs and their hashes are then those of MetaQNN's space.

    Args:
        max_layers: Most layers in a chain (convs, pools and fully connected layers).
        input_size: Spatial size of the input images, which the legality rules follow.
        kernel_sizes: Conv kernel sizes to choose from.
        filters: Conv filter counts to choose from.
        strides: Conv strides to choose from.
        fc_units: Widths of fully connected layers to choose from.
        max_fc_layers: Most fully connected layers in a chain (0 disables them).
        max_fc_input_size: Largest representation size a fully connected layer may follow.
        min_pool_size: Smallest representation size a pool may be applied to.
        skip_connections: Let each conv layer take skip connections from the earlier conv layers.

    Raises:
        ValueError: An argument is out of range; the message names it and shows the value.

    Example:
        >>> import optuna
        >>> space = ChainSpace(max_layers=4, filters=(8, 16))
        >>> trial = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0)).ask()
        >>> spec = space.suggest(trial)  # the decisions, taken through the trial
        >>> len(spec.layers) <= 4 and spec == space.spec_from_params(trial.params)
        True
    """

    name = "chain"

    def __init__(
        self,
        *,
        max_layers: int = 6,
        input_size: int = 28,
        kernel_sizes: Sequence[int] = (1, 3, 5, 7),
        filters: Sequence[int] = (16, 32, 64, 128),
        strides: Sequence[int] = (1, 2),
        fc_units: Sequence[int] = (128, 256, 512),
        max_fc_layers: int = 2,
        max_fc_input_size: int = 8,
        min_pool_size: int = 4,
        skip_connections: bool = False,
    ) -> None:
        self.max_layers = check_int("max_layers", max_layers, minimum=1)
        self.input_size = check_int("input_size", input_size, minimum=1)
        self.kernel_sizes = tuple(sorted(check_int_choices("kernel_sizes", kernel_sizes)))
        self.filters = check_int_choices("filters", filters)
        self.strides = tuple(sorted(check_int_choices("strides", strides)))
        self.fc_units = check_int_choices("fc_units", fc_units)
        self.max_fc_layers = check_int("max_fc_layers", max_fc_layers, minimum=0)
        self.max_fc_input_size = check_int("max_fc_input_size", max_fc_input_size, minimum=1)
        self.min_pool_size = check_int("min_pool_size", min_pool_size, minimum=2)
        self.skip_connections = check_bool("skip_connections", skip_connections)

    def check_input_shape(self, input_shape: Sequence[int]) -> None:
        """Check that the images are ``input_size`` pixels on their shorter side, which the legality
        rules (kernel and pool limits, when a fully connected layer may come) follow.

        Raises:
            ValueError: They are not; the message names both sizes.
        """
        size = min(int(side) for side in tuple(input_shape)[1:])
        if size != self.input_size:
            raise ValueError(
                f"space: ChainSpace(input_size={self.input_size}) does not fit the dataset's images of shape "
                f"{tuple(input_shape)} ({size} pixels on the shorter side); make it with input_size={size}."
            )

    def to_dict(self) -> dict[str, Any]:
        data = {
            "space": self.name,
            "max_layers": self.max_layers,
            "input_size": self.input_size,
            "kernel_sizes": list(self.kernel_sizes),
            "filters": list(self.filters),
            "strides": list(self.strides),
            "fc_units": list(self.fc_units),
            "max_fc_layers": self.max_fc_layers,
            "max_fc_input_size": self.max_fc_input_size,
            "min_pool_size": self.min_pool_size,
        }
        if self.skip_connections:  # only when on, so the settings of MetaQNN's space read as before
            data["skip_connections"] = True
        return data

    def legal_types(self, *, depth: int, size: int, previous: ChainLayer | None, n_fc: int) -> list[str]:
        """The layer types (and ``stop``) offered at ``depth`` in the given state."""
        can_stop = depth > 0
        can_fc = n_fc < self.max_fc_layers and size <= self.max_fc_input_size
        if previous is not None and previous.type == FC:
            return [FC, STOP] if can_fc else [STOP]
        types = [CONV]
        if size >= self.min_pool_size and (previous is None or previous.type not in POOL_TYPES):
            types += [MAX_POOL, AVG_POOL]
        if can_fc:
            types.append(FC)
        if can_stop:
            types.append(STOP)
        return types

    def decide(self, decider: Decider) -> ChainSpec:
        return ChainSpec(layers=tuple(self._layers(decider)))

    def metaqnn_state(self, name: str, params: Mapping[str, Any]) -> list[Any]:
        """MetaQNN's state for the decision ``name``, given the decisions taken before it.

        The state is the layer depth, the previous layer (type and parameters), the
        representation-size bucket, the field being decided and the fields of this layer already
        decided. Pass it as ``MetaQNNSampler(state=space.metaqnn_state)``.

        A decision that is not one of the chain's (``layer_<i>/...``), such as a learning rate
        suggested beside the architecture, has its name and the number of layers decided so far as
        its state.
        """
        prefix, _, field = name.partition("/")
        head, _, index = prefix.partition("_")
        if head != "layer" or not index.isdigit() or not field:
            decided = {key.split("/")[0] for key in params if key.startswith("layer_")}
            return [name, len(decided)]
        depth = int(index)
        layers = self._layers(_PrefixDecider(params))[:depth]
        size = self.input_size
        for layer in layers:
            size = output_size(layer, size)
        previous = layers[-1].to_dict() if layers else None
        current = {k.split("/")[1]: v for k, v in params.items() if k.startswith(prefix + "/")}
        return [depth, field.split("/")[0], previous, representation_bucket(size), current]

    def _layers(self, decider: Decider) -> list[ChainLayer]:
        layers: list[ChainLayer] = []
        size = self.input_size
        for depth in range(self.max_layers):
            previous = layers[-1] if layers else None
            n_fc = sum(layer.type == FC for layer in layers)
            types = self.legal_types(depth=depth, size=size, previous=previous, n_fc=n_fc)
            full_types = [CONV, MAX_POOL, AVG_POOL, FC] + ([STOP] if depth > 0 else [])
            prefix = f"layer_{depth}"
            kind = _choose(decider, f"{prefix}/type", types, _missing_tag(full_types, types))
            if kind == STOP:
                break
            if kind == CONV:
                kernels = [k for k in self.kernel_sizes if k <= size] or [self.kernel_sizes[0]]
                strides = [s for s in self.strides if s <= size] or [self.strides[0]]
                kernel = _choose(decider, f"{prefix}/kernel", kernels, _upto_tag(self.kernel_sizes, kernels))
                filters = _choose(decider, f"{prefix}/filters", self.filters, "")
                stride = _choose(decider, f"{prefix}/stride", strides, _upto_tag(self.strides, strides))
                skips = None
                if self.skip_connections:
                    earlier = [j for j, earlier_layer in enumerate(layers) if earlier_layer.type == CONV]
                    skips = tuple(j for j in earlier if decider.categorical(f"{prefix}/skip_{j}", [0, 1]) == 1)
                layer = ChainLayer(CONV, kernel=kernel, filters=filters, stride=stride, skips=skips)
            elif kind == FC:
                layer = ChainLayer(FC, units=_choose(decider, f"{prefix}/units", self.fc_units, ""))
            else:
                layer = ChainLayer(kind)
            layers.append(layer)
            size = output_size(layer, size)
        return layers


def _choose(decider: Decider, name: str, legal: Sequence[Any], tag: str) -> Any:
    """Ask for one of ``legal`` under ``name``, suffixed by ``tag`` when the rules narrowed it."""
    if len(legal) == 1:
        return legal[0]
    return decider.categorical(f"{name}/{tag}" if tag else name, legal)


def _missing_tag(full: Sequence[str], legal: Sequence[str]) -> str:
    missing = [kind for kind in full if kind not in legal]
    groups = []
    for kind in missing:
        group = "pool" if kind in POOL_TYPES else kind
        if group not in groups:
            groups.append(group)
    return "no_" + "_".join(groups) if groups else ""


def _upto_tag(full: Sequence[int], legal: Sequence[int]) -> str:
    return "" if len(legal) == len(full) else f"upto_{max(legal)}"


class _PrefixDecider(Decider):
    """Replays the decisions taken so far; a decision not yet taken ends the chain there."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = params

    def categorical(self, name: str, choices: Sequence[Any]) -> Any:
        if name in self._params:
            return self._params[name]
        return STOP if name.split("/")[1] == "type" else choices[0]

    def integer(self, name: str, low: int, high: int) -> int:
        return int(self._params.get(name, low))
