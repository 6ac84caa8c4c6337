"""What every search space and architecture spec shares."""

from __future__ import annotations

import abc
import dataclasses
import hashlib
import json
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import optuna

from optuna_nas._decided import mark_decided


@dataclasses.dataclass(frozen=True)
class ArchitectureGraph:
    """An architecture as a picture sees it: labelled nodes, labelled edges between them, a title.

    Nodes are drawn left to right in their order; an edge ``(source, target, label)`` joins two node
    indices (``label`` may be empty).
    """

    nodes: tuple[str, ...]
    edges: tuple[tuple[int, int, str], ...]
    title: str = ""

    def __post_init__(self) -> None:
        if len(self.nodes) == 0:
            raise ValueError("nodes must hold at least one node, got ().")
        for edge in self.edges:
            if len(edge) != 3 or not all(isinstance(end, int) and 0 <= end < len(self.nodes) for end in edge[:2]):
                raise ValueError(
                    f"edges: {edge!r} must be (source, target, label) with node indices < {len(self.nodes)}."
                )


class ArchitectureSpec:
    """A pure, JSON-serialisable description of one architecture.

    Specs hold data only: building a network from a spec is the job of
    :mod:`optuna_nas.models`. A spec type of a new space is registered with
    :func:`optuna_nas.spaces.register_spec` so that trials' specs can be read back.
    """

    space: str = ""

    def to_dict(self) -> dict[str, Any]:
        """Return the spec as JSON-safe data, tagged with its space's name (``"space"``). The default
        serves a dataclass of JSON-safe fields: the tag and the fields.
        """
        if not dataclasses.is_dataclass(self):
            raise NotImplementedError(f"{type(self).__name__} is not a dataclass: it must define to_dict().")
        return {"space": self.space, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ArchitectureSpec:
        """Rebuild the spec from :meth:`to_dict` output. The default serves the default :meth:`to_dict`:
        the fields as keyword arguments.
        """
        if not dataclasses.is_dataclass(cls):
            raise NotImplementedError(f"{cls.__name__} is not a dataclass: it must define from_dict().")
        return cls(**{key: value for key, value in data.items() if key != "space"})

    def summary(self) -> str:
        """A one-line, human-readable description (shown in tables and the dashboard); by default the
        :meth:`to_dict` fields, ``key=value``.
        """
        return ", ".join(f"{key}={value}" for key, value in self.to_dict().items() if key != "space")

    def graph(self) -> ArchitectureGraph:
        """The architecture as nodes and edges, for :func:`optuna_nas.analysis.draw_architecture`.
        The default is input, the :meth:`summary`, output; spaces whose specs are graphs say more.
        """
        return ArchitectureGraph(nodes=("input", self.summary(), "output"), edges=((0, 1, ""), (1, 2, "")))

    def canonical_dict(self) -> dict[str, Any]:
        """Return the form that equivalent architectures share (used for the hash)."""
        return self.to_dict()

    @property
    def spec_hash(self) -> str:
        """A short, stable hash of the canonical form: equal for equivalent architectures."""
        text = json.dumps(self.canonical_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def to_json(self) -> str:
        """Return the spec as a JSON string."""
        return json.dumps(self.to_dict(), sort_keys=True)


class Decider(abc.ABC):
    """Takes the decisions a space asks for: from a live trial, or from recorded params."""

    @abc.abstractmethod
    def categorical(self, name: str, choices: Sequence[Any]) -> Any:
        """Return one of ``choices`` for the decision ``name``."""

    @abc.abstractmethod
    def integer(self, name: str, low: int, high: int) -> int:
        """Return an integer in ``[low, high]`` for the decision ``name``."""


class TrialDecider(Decider):
    """Asks an Optuna trial, so each decision reaches the study's sampler."""

    def __init__(self, trial: optuna.Trial) -> None:
        self._trial = trial

    def categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._trial.suggest_categorical(name, list(choices))

    def integer(self, name: str, low: int, high: int) -> int:
        return self._trial.suggest_int(name, low, high)


class DistributionDecider(Decider):
    """Takes each decision as the distribution a trial would be asked for, without a trial, and
    keeps the values chosen, in order, with their distributions (``params``, ``distributions``).

    Subclasses implement :meth:`choose`, which sees the decisions taken before this one.
    """

    def __init__(self) -> None:
        self.params: dict[str, Any] = {}
        self.distributions: dict[str, optuna.distributions.BaseDistribution] = {}

    @abc.abstractmethod
    def choose(self, name: str, distribution: optuna.distributions.BaseDistribution) -> Any:
        """Return the value of the decision ``name`` of ``distribution``."""

    def categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._record(name, optuna.distributions.CategoricalDistribution(list(choices)))

    def integer(self, name: str, low: int, high: int) -> int:
        return int(self._record(name, optuna.distributions.IntDistribution(low, high)))

    def _record(self, name: str, distribution: optuna.distributions.BaseDistribution) -> Any:
        value = self.choose(name, distribution)
        self.params[name] = value
        self.distributions[name] = distribution
        return value


class ParamsDecider(Decider):
    """Replays recorded params, checking each one is a legal decision."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        self._params = params

    def _lookup(self, name: str) -> Any:
        if name not in self._params:
            raise ValueError(f"params: the decision {name!r} is missing from {dict(self._params)!r}.")
        return self._params[name]

    def categorical(self, name: str, choices: Sequence[Any]) -> Any:
        value = self._lookup(name)
        if value not in list(choices):
            raise ValueError(f"params[{name!r}]: {value!r} is not a legal choice here; legal: {list(choices)!r}.")
        return value

    def integer(self, name: str, low: int, high: int) -> int:
        value = self._lookup(name)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
            raise ValueError(f"params[{name!r}]: {value!r} is not an integer in [{low}, {high}].")
        return value


class _RecordingDecider(ParamsDecider):
    """Replays recorded params and remembers which names the space asked."""

    def __init__(self, params: Mapping[str, Any]) -> None:
        super().__init__(params)
        self.asked: set[str] = set()

    def _lookup(self, name: str) -> Any:
        self.asked.add(name)
        return super()._lookup(name)


class Space(abc.ABC):
    """A search space: turns an architecture into define-by-run ``trial.suggest_*`` calls.

    Subclasses implement :meth:`decide`, which asks a :class:`Decider` for every decision in a fixed
    order with stable names. The same code therefore serves a live trial (:meth:`suggest`) and a
    record of one (:meth:`spec_from_params`), and gives every space a canonical duplicate key
    (:meth:`dedup_key`).
    """

    name: str = ""

    @abc.abstractmethod
    def decide(self, decider: Decider) -> ArchitectureSpec:
        """Take every decision through ``decider`` and return the resulting spec."""

    def suggest(self, trial: optuna.Trial) -> ArchitectureSpec:
        """Ask ``trial`` for an architecture and return its spec.

        Once every decision is taken the trial is marked decided in storage, so the samplers of
        other workers see its architecture as under evaluation from then on
        (:func:`optuna_nas.samplers.mark_decided`).

        Raises:
            optuna.TrialPruned: The study's sampler avoids duplicates and another trial holds this
                architecture (see :func:`~optuna_nas.samplers.mark_decided`). Inside
                ``study.optimize`` the trial ends pruned; with ask-and-tell, tell it as pruned.
        """
        spec = self.decide(TrialDecider(trial))
        mark_decided(trial)
        return spec

    def dedup_key(self, params: Mapping[str, Any]) -> str | None:
        """The key that architectures computing the same function share; ``None`` while ``params``
        is not yet a whole architecture of this space.

        The key is the spec's canonical hash (:attr:`ArchitectureSpec.spec_hash`) together with any
        params the space does not ask (a learning rate suggested beside the architecture). Pass it to
        a sampler as ``dedup_key=space.dedup_key``.
        """
        decider = _RecordingDecider(params)
        try:
            spec = self.decide(decider)
        except ValueError:
            return None
        others = sorted((name, repr(value)) for name, value in params.items() if name not in decider.asked)
        return json.dumps([spec.spec_hash, others])

    def check_input_shape(self, input_shape: Sequence[int]) -> None:
        """Check that the space's architectures are made for images of ``input_shape``
        ``(channels, height, width)``; the default accepts any. Builders take the channel count
        from the data, so only a space whose rules follow the image size (``ChainSpace``) checks.

        Raises:
            ValueError: The space was made for another image size; the message names both.
        """
        return None  # any image shape fits the spaces whose builders adapt to it

    def spec_from_params(self, params: Mapping[str, Any]) -> ArchitectureSpec:
        """Rebuild the spec a trial with these ``params`` was given.

        Raises:
            ValueError: A decision is missing or is not legal where it stands.
        """
        return self.decide(ParamsDecider(params))

    def to_dict(self) -> dict[str, Any]:
        """Return the space's settings as JSON-safe data; by default its ``name`` alone."""
        return {"space": self.name}
