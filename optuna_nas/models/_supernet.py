"""Supernets: one set of weights shared by every architecture of a space (ENAS, Pham et al. 2018).

A supernet runs any child of its space: ``supernet(images, spec)``. Its weights are modules keyed by
where they sit and what they compute; a child uses the modules of its keys. Every module is
initialised from ``(seed, key)`` alone, so a supernet holds the same initial weights whichever
children created them and in whatever order.
"""

from __future__ import annotations

import abc
import dataclasses
import functools
import hashlib
from collections.abc import Callable
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from optuna_nas._registry import Registry
from optuna_nas._validation import check_int
from optuna_nas.models._cell import cell_layout
from optuna_nas.models._chain import conv_unit
from optuna_nas.models._chain import layer_output_size
from optuna_nas.models._init import initialize_parameters
from optuna_nas.models._ops import create_op
from optuna_nas.spaces import NUM_CELL_INPUTS
from optuna_nas.spaces import ArchitectureSpec
from optuna_nas.spaces import CellSpace
from optuna_nas.spaces import CellSpec
from optuna_nas.spaces import ChainLayer
from optuna_nas.spaces import ChainSpace
from optuna_nas.spaces import ChainSpec
from optuna_nas.spaces import Space

SupernetFactory = Callable[[Any, tuple[int, int, int], int, int], "SuperNetwork"]
_SUPERNETS: Registry[SupernetFactory] = Registry("supernet")


def register_supernet(
    space_type: type[Space], *, replace: bool = False
) -> Callable[[SupernetFactory], SupernetFactory]:
    """Register ``factory(space, input_shape, num_classes, seed) -> SuperNetwork`` for the spaces of
    ``space_type`` (a decorator), found by the space's ``name``.

    Raises:
        ValueError: ``space_type`` has no name, or its name has another factory and ``replace`` is false.
    """
    if not isinstance(space_type, type) or not issubclass(space_type, Space) or not space_type.name:
        raise ValueError(f"space_type must be a Space subclass with a name, got {space_type!r}.")

    def decorator(factory: SupernetFactory) -> SupernetFactory:
        return _SUPERNETS.register(space_type.name, factory, replace=replace)

    return decorator


def available_supernets(pattern: str = "*") -> list[str]:
    """The names of the spaces :func:`build_supernet` has a supernet for, matching ``pattern``, sorted."""
    return _SUPERNETS.names(pattern)


def build_supernet(space: Space, *, input_shape: Sequence[int], num_classes: int, seed: int = 0) -> SuperNetwork:
    """The supernet of ``space`` for images of ``input_shape`` and ``num_classes`` classes.

    Args:
        space: A space with a registered supernet (``CellSpace``, ``ChainSpace``).
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: Number of output logits.
        seed: Seed of the weights: each module's from ``(seed, its key)``.

    Raises:
        ValueError: The space has no supernet (the message lists those that do), or a shape argument
            is out of range.
    """
    if not isinstance(space, Space) or space.name not in _SUPERNETS:
        raise ValueError(
            f"space: no supernet for {type(space).__name__} (space {getattr(space, 'name', None)!r}); "
            f"supernets exist for the spaces {_SUPERNETS.names()} (optuna_nas.models.register_supernet adds one)."
        )
    shape = tuple(input_shape)
    if len(shape) != 3 or any(isinstance(d, bool) or not isinstance(d, int) or d < 1 for d in shape):
        raise ValueError(f"input_shape must be (channels, height, width) of positive ints, got {input_shape!r}.")
    check_int("num_classes", num_classes, minimum=1)
    check_int("seed", seed, minimum=0)
    return _SUPERNETS.get(space.name)(space, (shape[0], shape[1], shape[2]), num_classes, seed)


def key_seed(seed: int, key: str) -> int:
    """The seed of the module ``key`` in a supernet seeded with ``seed``."""
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "little") % (2**63 - 1)


def use_batch_statistics(module: nn.Module) -> nn.Module:
    """Make every BatchNorm of ``module`` normalise with the statistics of the batch it is given, in
    training and in evaluation, and keep none: running averages over many different children
    would fit none of them (ENAS evaluates its children in training mode for the same reason).
    """
    for layer in module.modules():
        if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)):
            layer.track_running_stats = False
            layer.running_mean = None
            layer.running_var = None
            layer.num_batches_tracked = None
    return module


def _escape(key: str) -> str:
    # Module names may not hold dots (an op name might).
    return key.replace("%", "%25").replace(".", "%2E")


def _unescape(name: str) -> str:
    return name.replace("%2E", ".").replace("%25", "%")


class SuperNetwork(nn.Module, abc.ABC):
    """Weights for every architecture of a space; ``supernet(images, spec)`` runs the child ``spec``.

    Subclasses say which modules a child uses (:meth:`keys_of`), how to make the module of a key
    (:meth:`create`) and how a child computes (:meth:`forward`). Modules are made when first needed
    (:meth:`ensure`), or all at once by a subclass that knows them all; either way each is
    initialised from ``(seed, key)``, and every BatchNorm in it normalises with batch statistics
    (:func:`use_batch_statistics`).

    Args:
        space: The space whose architectures it runs.
        input_shape: ``(channels, height, width)`` of one image.
        num_classes: Number of output logits.
        seed: Seed of the weights.
    """

    def __init__(self, space: Space, input_shape: tuple[int, int, int], num_classes: int, *, seed: int) -> None:
        super().__init__()
        self.space = space
        self.input_shape = input_shape
        self.num_classes = num_classes
        self.seed = check_int("seed", seed, minimum=0)
        self.shared = nn.ModuleDict()

    @abc.abstractmethod
    def keys_of(self, spec: ArchitectureSpec) -> list[str]:
        """The keys of the modules ``spec`` uses.

        Raises:
            ValueError: ``spec`` is not an architecture this supernet can run.
        """

    @abc.abstractmethod
    def create(self, key: str) -> nn.Module:
        """A new module for ``key`` (its initial weights are drawn afterwards).

        Raises:
            ValueError: ``key`` is not a key of this supernet.
        """

    @abc.abstractmethod
    def forward(self, x: torch.Tensor, spec: ArchitectureSpec) -> torch.Tensor:
        """The logits of the child ``spec`` on ``x`` (every module it uses must exist: see :meth:`ensure`)."""

    def describe(self) -> dict[str, Any]:
        """JSON-safe settings that decide which keys exist and what their modules are."""
        return {
            "supernet": type(self).__name__,
            "space": self.space.to_dict(),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
            "seed": self.seed,
        }

    def module(self, key: str) -> nn.Module:
        """The module of ``key``."""
        return self.shared[_escape(key)]

    def keys(self) -> list[str]:
        """The keys of the modules made so far, in the order they were made."""
        return [_unescape(name) for name in self.shared]

    def ensure(self, keys: Sequence[str], *, device: torch.device | str | None = None) -> list[nn.Parameter]:
        """Make the modules of ``keys`` that do not exist yet, on ``device`` (channels-last on CUDA);
        returns their parameters (to add to an optimizer).
        """
        added: list[nn.Parameter] = []
        for key in keys:
            name = _escape(key)
            if name in self.shared:
                continue
            module = use_batch_statistics(initialize_parameters(self.create(key), seed=key_seed(self.seed, key)))
            if device is not None:
                module = module.to(device)
                if torch.device(device).type == "cuda":
                    module = module.to(memory_format=torch.channels_last)
            self.shared[name] = module
            added += list(module.parameters())
        return added

    def parameters_of(self, spec: ArchitectureSpec) -> list[nn.Parameter]:
        """The parameters the child ``spec`` uses, each once."""
        seen: dict[int, nn.Parameter] = {}
        for key in self.keys_of(spec):
            for parameter in self.module(key).parameters():
                seen.setdefault(id(parameter), parameter)
        return list(seen.values())


# -- Chains (ENAS's macro space) ----------------------------------------------------------------------


class ChainSuperNetwork(SuperNetwork):
    """Shared weights of a :class:`~optuna_nas.spaces.ChainSpace` (ENAS's macro search).

    A conv layer's weights are keyed by its position, its full choice (kernel, filters, stride) and
    its input channels: ``conv/3/k5/f32/s1/c16``; a fully connected layer's by position, units and
    input features; a skip connection's 1x1 projection (where the channels differ) by its two ends
    and their channels, and the batch norm after a sum of skips by position and filters; the
    classifier by its input features. Modules are made as children first need them
    (:meth:`ensure`), each from ``(seed, key)``, so two supernets with the same seed agree on every
    module either has. Pools have no weights, and a skip input is average-pooled to the layer's size
    as in the network :func:`~optuna_nas.models.build_model` builds, without weights.
    """

    def __init__(self, space: ChainSpace, input_shape: tuple[int, int, int], num_classes: int, *, seed: int) -> None:
        space.check_input_shape(input_shape)
        super().__init__(space, input_shape, num_classes, seed=seed)

    def _steps(self, spec: ArchitectureSpec) -> list[_ChainStep]:
        """What each layer of ``spec`` computes with which weights, then the classifier."""
        if not isinstance(spec, ChainSpec):
            raise ValueError(f"spec must be a ChainSpec for a chain supernet, got {type(spec).__name__}.")
        channels, size_h, size_w = self.input_shape
        conv_channels: dict[int, int] = {}
        steps = []
        features: int | None = None
        for index, layer in enumerate(spec.layers):
            if layer.type == "conv":
                assert layer.filters is not None  # ChainLayer checks a conv has filters
                key = f"conv/{index}/k{layer.kernel}/f{layer.filters}/s{layer.stride}/c{channels}"
                channels = layer.filters
                size_h, size_w = layer_output_size(layer, size_h, size_w)
                skips = tuple(
                    (source, None if c_in == channels else f"skip/{index}/{source}/c{c_in}/f{channels}")
                    for source, c_in in ((source, conv_channels[source]) for source in layer.skips or ())
                )
                norm = f"skipnorm/{index}/f{channels}" if skips else None
                steps.append(_ChainStep(layer, key, False, (size_h, size_w), skips, norm))
                conv_channels[index] = channels
            elif layer.type in ("max_pool", "avg_pool"):
                size_h, size_w = layer_output_size(layer, size_h, size_w)
                steps.append(_ChainStep(layer, None, False, (size_h, size_w)))
            else:
                flatten = features is None
                if features is None:
                    features = channels * size_h * size_w
                steps.append(_ChainStep(layer, f"fc/{index}/u{layer.units}/in{features}", flatten))
                features = layer.units
        flatten = features is None
        if features is None:
            features = channels * size_h * size_w
        steps.append(_ChainStep(None, f"classifier/in{features}", flatten))
        return steps

    def keys_of(self, spec: ArchitectureSpec) -> list[str]:
        keys = []
        for step in self._steps(spec):
            keys += [key for key in (step.key, *(projection for _, projection in step.skips), step.norm) if key]
        return keys

    def create(self, key: str) -> nn.Module:
        kind, *fields = key.split("/")
        try:
            if kind == "conv":
                _, kernel, filters, stride, c_in = fields
                layer = ChainLayer(
                    "conv", kernel=_field(kernel, "k"), filters=_field(filters, "f"), stride=_field(stride, "s")
                )
                return conv_unit(_field(c_in, "c"), layer)
            if kind == "skip":
                _, _, c_in, filters = fields
                return nn.Conv2d(_field(c_in, "c"), _field(filters, "f"), 1, bias=False)
            if kind == "skipnorm":
                return nn.BatchNorm2d(_field(fields[1], "f"))
            if kind == "fc":
                _, units, features = fields
                return nn.Sequential(nn.Linear(_field(features, "in"), _field(units, "u")), nn.ReLU(inplace=True))
            if kind == "classifier":
                (features,) = fields
                return nn.Linear(_field(features, "in"), self.num_classes)
        except ValueError:
            pass
        raise ValueError(f"key: {key!r} is not a key of a chain supernet.")

    def forward(self, x: torch.Tensor, spec: ArchitectureSpec) -> torch.Tensor:
        outputs: dict[int, torch.Tensor] = {}
        for index, step in enumerate(self._steps(spec)):
            if step.flatten:
                x = torch.flatten(x, 1)
            if step.layer is not None and step.layer.type in ("max_pool", "avg_pool"):
                window = (min(2, x.shape[-2]), min(2, x.shape[-1]))
                pool = F.max_pool2d if step.layer.type == "max_pool" else F.avg_pool2d
                x = pool(x, window, stride=2, ceil_mode=True)
                continue
            assert step.key is not None  # every other step has weights
            x = self.module(step.key)(x)
            if step.layer is None or step.layer.type != "conv":
                continue
            for source, projection in step.skips:
                skip = outputs[source]
                if tuple(skip.shape[-2:]) != step.size:
                    skip = F.adaptive_avg_pool2d(skip, step.size)
                if projection is not None:
                    skip = self.module(projection)(skip)
                x = x + skip
            if step.norm is not None:
                x = self.module(step.norm)(x)
            outputs[index] = x
        return x


@dataclasses.dataclass(frozen=True)
class _ChainStep:
    """One layer of a child in a chain supernet (``layer`` None: the classifier)."""

    layer: ChainLayer | None
    key: str | None  # its weights (none for a pool)
    flatten: bool  # flatten the representation before it
    size: tuple[int, int] = (0, 0)  # a conv's or pool's output height and width
    skips: tuple[tuple[int, str | None], ...] = ()  # (source layer, its projection's key where channels differ)
    norm: str | None = None  # the batch norm after a sum of skips


def _field(text: str, prefix: str) -> int:
    if not text.startswith(prefix) or not text[len(prefix) :].isdigit():
        raise ValueError(text)
    return int(text[len(prefix) :])


@register_supernet(ChainSpace)
def _chain_supernet(space: ChainSpace, input_shape: tuple[int, int, int], num_classes: int, seed: int) -> SuperNetwork:
    return ChainSuperNetwork(space, input_shape, num_classes, seed=seed)


# -- Cells (ENAS's micro space) ------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class _CellPosition:
    """One cell of the skeleton: its channels, whether it reduces, and the shapes of its two inputs
    as ``(channels per part, parts)``: a cell's output is one part of ``channels`` per block it
    concatenates, the stem's is one part.
    """

    channels: int
    reduction: bool
    reduction_prev: bool
    input0: tuple[int, int]
    input1: tuple[int, int]


class _SlicedReLUConvBN(nn.Module):
    """ReLU, 1x1 conv, batch norm over an input made of parts (blocks of the previous cell): the conv
    holds weights for every part the input may have and uses the columns of those it has, as ENAS's
    masked final convolution does.
    """

    def __init__(self, part_channels: int, parts: int, c_out: int) -> None:
        super().__init__()
        self.part_channels, self.parts = part_channels, parts
        self.conv = nn.Conv2d(part_channels * parts, c_out, 1, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, used: Sequence[int]) -> torch.Tensor:
        weight = _columns(self.conv.weight, self.part_channels, self.parts, used)
        out: torch.Tensor = self.bn(F.conv2d(F.relu(x), weight))
        return out


class _SlicedFactorizedReduce(nn.Module):
    """:class:`~optuna_nas.models._ops.FactorizedReduce` over an input made of parts (see
    :class:`_SlicedReLUConvBN`).
    """

    def __init__(self, part_channels: int, parts: int, c_out: int) -> None:
        super().__init__()
        self.part_channels, self.parts = part_channels, parts
        self.conv_a = nn.Conv2d(part_channels * parts, c_out // 2, 1, stride=2, bias=False)
        self.conv_b = nn.Conv2d(part_channels * parts, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, used: Sequence[int]) -> torch.Tensor:
        x = F.relu(x)
        shifted = x[:, :, 1:, 1:]
        if shifted.shape[-1] == 0 or shifted.shape[-2] == 0:
            shifted = x
        a = F.conv2d(x, _columns(self.conv_a.weight, self.part_channels, self.parts, used), stride=2)
        b = F.conv2d(shifted, _columns(self.conv_b.weight, self.part_channels, self.parts, used), stride=2)
        if b.shape[-2:] != a.shape[-2:]:
            b = F.pad(b, (0, a.shape[-1] - b.shape[-1], 0, a.shape[-2] - b.shape[-2]))
        out: torch.Tensor = self.bn(torch.cat([a, b], dim=1))
        return out


class _SlicedLinear(nn.Module):
    """The classifier over the last cell's parts (see :class:`_SlicedReLUConvBN`)."""

    def __init__(self, part_channels: int, parts: int, c_out: int) -> None:
        super().__init__()
        self.part_channels, self.parts = part_channels, parts
        self.linear = nn.Linear(part_channels * parts, c_out)

    def forward(self, x: torch.Tensor, used: Sequence[int]) -> torch.Tensor:
        weight = self.linear.weight
        if list(used) != list(range(self.parts)):
            weight = weight.view(weight.shape[0], self.parts, self.part_channels)[:, list(used)].flatten(1)
        return F.linear(x, weight, self.linear.bias)


def _columns(weight: torch.Tensor, part_channels: int, parts: int, used: Sequence[int]) -> torch.Tensor:
    """The input columns of a 1x1 conv's ``weight`` that belong to the ``used`` parts, in order."""
    if list(used) == list(range(parts)):
        return weight
    c_out = weight.shape[0]
    return weight.view(c_out, parts, part_channels, 1, 1)[:, list(used)].reshape(c_out, -1, 1, 1)


class CellSuperNetwork(SuperNetwork):
    """Shared weights of a :class:`~optuna_nas.spaces.CellSpace` (ENAS's micro search).

    The skeleton is the space's (stem, ``stages`` stages of ``cells_per_stage`` cells, a reduction
    cell between stages, as :class:`~optuna_nas.models.build_model` builds a ``CellSpec``), and every
    cell position holds its own weights for every op at every block position on every input:
    ``cell2/block1/in0/sep_conv_3x3``. A block's two halves share them (an op on an input is the same
    op whichever half names it, as the spec's hash has it). The 1x1 convolutions that take the
    previous cells' outputs, and the classifier, hold weights for every block the previous cell may
    output and use those of the blocks it does output. All modules are made at once.
    """

    def __init__(self, space: CellSpace, input_shape: tuple[int, int, int], num_classes: int, *, seed: int) -> None:
        super().__init__(space, input_shape, num_classes, seed=seed)
        self.cell_space = space
        self.positions: list[_CellPosition] = []
        inputs = [(space.channels, 1), (space.channels, 1)]  # the stem's output, twice
        for channels, reduction, reduction_prev in cell_layout(space.stages, space.cells_per_stage, space.channels):
            self.positions.append(_CellPosition(channels, reduction, reduction_prev, inputs[0], inputs[1]))
            inputs = [inputs[1], (channels, space.max_blocks)]
        self._output = inputs[1]
        self._recipes = self._make_recipes(input_shape[0])
        self.ensure(list(self._recipes))

    def _make_recipes(self, c_in: int) -> dict[str, Callable[[], nn.Module]]:
        """Every key of the supernet, and how to make its module."""
        channels = self.cell_space.channels
        recipes: dict[str, Callable[[], nn.Module]] = {
            "stem": lambda: nn.Sequential(nn.Conv2d(c_in, channels, 3, padding=1, bias=False), nn.BatchNorm2d(channels))
        }
        for p, position in enumerate(self.positions):
            reduce = _SlicedFactorizedReduce if position.reduction_prev else _SlicedReLUConvBN
            recipes[f"cell{p}/pre0"] = functools.partial(reduce, *position.input0, position.channels)
            recipes[f"cell{p}/pre1"] = functools.partial(_SlicedReLUConvBN, *position.input1, position.channels)
            for b in range(self.cell_space.max_blocks):
                for source in range(NUM_CELL_INPUTS + b):
                    stride = 2 if position.reduction and source < NUM_CELL_INPUTS else 1
                    for op in self.cell_space.ops:
                        recipes[f"cell{p}/block{b}/in{source}/{op}"] = functools.partial(
                            create_op, op, position.channels, stride
                        )
        recipes["classifier"] = functools.partial(_SlicedLinear, *self._output, self.num_classes)
        return recipes

    def _check(self, spec: ArchitectureSpec) -> CellSpec:
        if not isinstance(spec, CellSpec):
            raise ValueError(f"spec must be a CellSpec for a cell supernet, got {type(spec).__name__}.")
        space = self.cell_space
        skeleton = (spec.stages, spec.cells_per_stage, spec.channels)
        if skeleton != (space.stages, space.cells_per_stage, space.channels):
            raise ValueError(
                f"spec: its skeleton (stages, cells_per_stage, channels) {skeleton} is not the supernet's "
                f"{(space.stages, space.cells_per_stage, space.channels)}."
            )
        if not space.min_blocks <= len(spec.blocks) <= space.max_blocks:
            raise ValueError(
                f"spec: {len(spec.blocks)} blocks, the supernet holds {space.min_blocks}..{space.max_blocks}."
            )
        unknown = sorted({op for block in spec.blocks for op in (block.op_a, block.op_b)} - set(space.ops))
        if unknown:
            raise ValueError(f"spec: ops {unknown} are not among the supernet's {list(space.ops)}.")
        return spec

    def keys_of(self, spec: ArchitectureSpec) -> list[str]:
        cell = self._check(spec)
        keys = ["stem"]
        for p in range(len(self.positions)):
            keys += [f"cell{p}/pre0", f"cell{p}/pre1"]
            for b, block in enumerate(cell.blocks):
                keys += [
                    f"cell{p}/block{b}/in{block.input_a}/{block.op_a}",
                    f"cell{p}/block{b}/in{block.input_b}/{block.op_b}",
                ]
        return list(dict.fromkeys([*keys, "classifier"]))

    def create(self, key: str) -> nn.Module:
        recipe = self._recipes.get(key)
        if recipe is None:
            raise ValueError(f"key: {key!r} is not a key of this cell supernet.")
        return recipe()

    def forward(self, x: torch.Tensor, spec: ArchitectureSpec) -> torch.Tensor:
        cell = self._check(spec)
        stem = self.module("stem")(x)
        outputs = list(cell.unused_blocks)
        s0, used0, s1, used1 = stem, [0], stem, [0]
        for p in range(len(self.positions)):
            states = [self.module(f"cell{p}/pre0")(s0, used0), self.module(f"cell{p}/pre1")(s1, used1)]
            for b, block in enumerate(cell.blocks):
                a = self.module(f"cell{p}/block{b}/in{block.input_a}/{block.op_a}")(states[block.input_a])
                c = self.module(f"cell{p}/block{b}/in{block.input_b}/{block.op_b}")(states[block.input_b])
                states.append(a + c)
            out = torch.cat([states[NUM_CELL_INPUTS + j] for j in outputs], dim=1)
            s0, used0, s1, used1 = s1, used1, out, outputs
        pooled = torch.flatten(F.adaptive_avg_pool2d(F.relu(s1), 1), 1)
        logits: torch.Tensor = self.module("classifier")(pooled, used1)
        return logits


@register_supernet(CellSpace)
def _cell_supernet(space: CellSpace, input_shape: tuple[int, int, int], num_classes: int, seed: int) -> SuperNetwork:
    return CellSuperNetwork(space, input_shape, num_classes, seed=seed)
