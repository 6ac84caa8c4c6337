"""A recurrent policy over define-by-run decisions (Zoph & Le 2017; Pham et al. 2018).

:class:`SequencePolicy` is an LSTM that writes an architecture one decision at a time. Decisions need
not be known in advance: a decision point (its name and number of actions) gets its softmax head and
the embeddings of its actions the first time it is met, each initialised from ``(seed, its key)``
alone, so the policy does not depend on the order in which points were met. Each decision is
sampled given the decisions already taken: the LSTM reads a learned start vector, then the embedding
of every earlier action.

The math is float64 matrix-vector products of the LSTM's size; the same history gives bit-identical
weights in every process, whatever torch's thread setting (a test checks processes with 1 and 2
threads; 1, 2 and 4 threads at widths up to 512 were checked by hand). torch is imported when the
policy first computes, not by ``import optuna_nas.samplers``.

Parameters are a plain ``dict`` of named tensors (:data:`PolicyParameters`), updated by
:class:`Adam`, so a learner can copy, compare and rebuild them.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING
from typing import Any

import numpy as np

from optuna_nas._validation import check_int
from optuna_nas._validation import check_number

if TYPE_CHECKING:
    import torch

#: Named float64 tensors: ``lstm/*``, ``start``, and ``head/<key>/*``, ``embed/<key>`` per decision point.
PolicyParameters = dict[str, "torch.Tensor"]
#: A taken decision as the policy sees it: ``(decision key, action index)``.
Step = tuple[str, int]

#: Weights are initialised uniformly in ``[-INIT_SCALE, INIT_SCALE]``, as ENAS does (0.1).
INIT_SCALE = 0.1
#: The widest LSTM accepted (its weights and Adam's moments take ``96 * hidden_size ** 2`` bytes).
MAX_HIDDEN_SIZE = 4096


@dataclasses.dataclass(frozen=True)
class Carry:
    """The LSTM's state after some decisions: hidden and cell vectors and the next input."""

    hidden: torch.Tensor
    cell: torch.Tensor
    inputs: torch.Tensor


def decision_key(name: str, size: int) -> str:
    """The key of a decision point: its name and number of actions (``"layer_0/type#5"``)."""
    return f"{name}#{size}"


class SequencePolicy:
    """An LSTM policy over decisions met while running (define-by-run).

    Args:
        hidden_size: Width of the LSTM and of the action embeddings.
        temperature: Logits are divided by it before the softmax (ENAS: 5).
        tanh_constant: If set, logits become ``tanh_constant * tanh(logits)`` after the temperature
            (ENAS: 2.5), which bounds how sure the policy gets.
        probability_floor: A constant added to every action's softmax output before renormalising
            (Zoph & Le's seeds: 0.05), so no action's probability falls below
            ``floor / (1 + n * floor)``: the policy keeps exploring.
        seed: Seed of the initial weights.

    Raises:
        ValueError: An argument is out of range; the message names it.

    Example:
        >>> policy = SequencePolicy(hidden_size=8, seed=0)
        >>> parameters = policy.initial_parameters()
        >>> p = policy.probabilities(parameters, [], decision_key("op", 3))
        >>> p.shape, round(float(p.sum()), 12)
        ((3,), 1.0)
    """

    def __init__(
        self,
        *,
        hidden_size: int = 32,
        temperature: float = 1.0,
        tanh_constant: float | None = None,
        probability_floor: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.hidden_size = check_int("hidden_size", hidden_size, minimum=1)
        if self.hidden_size > MAX_HIDDEN_SIZE:
            raise ValueError(f"hidden_size must be at most {MAX_HIDDEN_SIZE}, got {hidden_size!r}.")
        self.temperature = check_number("temperature", temperature, low=0.0, low_open=True)
        self.tanh_constant = (
            None if tanh_constant is None else check_number("tanh_constant", tanh_constant, low=0.0, low_open=True)
        )
        self.probability_floor = check_number("probability_floor", probability_floor, low=0.0)
        self.seed = check_int("seed", seed, minimum=0)
        self._initial: dict[str, torch.Tensor] = {}  # initial weights of points, by name (never changed)

    # -- Parameters -----------------------------------------------------------------------------

    def initial_parameters(self) -> PolicyParameters:
        """The LSTM and the start vector; heads and embeddings come as decision points are met."""
        h = self.hidden_size
        shapes = {"lstm/weight_ih": (4 * h, h), "lstm/weight_hh": (4 * h, h), "lstm/bias": (4 * h,), "start": (h,)}
        return {name: self._init(name, shape) for name, shape in shapes.items()}

    def point_shapes(self, key: str) -> dict[str, tuple[int, ...]]:
        """The parameters of the decision point ``key`` and their shapes."""
        size = int(key.rsplit("#", 1)[1])
        h = self.hidden_size
        return {f"head/{key}/weight": (size, h), f"head/{key}/bias": (size,), f"embed/{key}": (size, h)}

    def add_points(self, parameters: PolicyParameters, keys: Sequence[str]) -> list[str]:
        """Create the parameters of decision points not met before, in place; returns their names."""
        added = []
        for key in keys:
            for name, shape in self.point_shapes(key).items():
                if name not in parameters:
                    parameters[name] = self._init(name, shape)
                    added.append(name)
        return added

    def _init(self, name: str, shape: tuple[int, ...]) -> torch.Tensor:
        import torch

        value = self._initial.get(name)
        if value is None or tuple(value.shape) != shape:
            generator = torch.Generator().manual_seed(zlib.crc32(f"{self.seed}:{name}".encode()))
            value = (torch.rand(shape, generator=generator, dtype=torch.float64) * 2.0 - 1.0) * INIT_SCALE
            self._initial[name] = value  # tensors are replaced, never changed in place: sharing is safe
        return value

    # -- Computing ------------------------------------------------------------------------------

    def _point(self, parameters: PolicyParameters, key: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        # A point never learned from has its initial weights, computed here and not stored.
        weight, bias, embed = (
            parameters[name] if name in parameters else self._init(name, shape)
            for name, shape in self.point_shapes(key).items()
        )
        return weight, bias, embed

    def _logits(self, hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        import torch

        logits = (weight @ hidden + bias) / self.temperature
        if self.tanh_constant is not None:
            logits = self.tanh_constant * torch.tanh(logits)
        return logits

    def _distribution(self, logits: torch.Tensor) -> torch.Tensor:
        import torch

        probabilities = torch.softmax(logits, dim=0)
        if self.probability_floor > 0:
            probabilities = (probabilities + self.probability_floor) / (1.0 + len(logits) * self.probability_floor)
        return probabilities

    def start(self, parameters: PolicyParameters) -> Carry:
        """The LSTM's state before the first decision."""
        import torch

        zeros = torch.zeros(self.hidden_size, dtype=torch.float64)
        return Carry(hidden=zeros, cell=zeros, inputs=parameters["start"])

    def _cell(self, parameters: PolicyParameters, carry: Carry) -> tuple[torch.Tensor, torch.Tensor]:
        import torch

        h = self.hidden_size
        gates = parameters["lstm/weight_ih"] @ carry.inputs + parameters["lstm/weight_hh"] @ carry.hidden
        gates = gates + parameters["lstm/bias"]
        i, f, g, o = gates[:h], gates[h : 2 * h], gates[2 * h : 3 * h], gates[3 * h :]
        cell = torch.sigmoid(f) * carry.cell + torch.sigmoid(i) * torch.tanh(g)
        return torch.sigmoid(o) * torch.tanh(cell), cell

    def step(self, parameters: PolicyParameters, carry: Carry, key: str) -> tuple[torch.Tensor, torch.Tensor, Carry]:
        """One decision at point ``key``: its action distribution, the point's action embeddings, and
        the state once an action is taken (``dataclasses.replace(state, inputs=embeddings[action])``).
        """
        hidden, cell = self._cell(parameters, carry)
        weight, bias, embed = self._point(parameters, key)
        return self._distribution(self._logits(hidden, weight, bias)), embed, Carry(hidden, cell, carry.inputs)

    def advance(self, parameters: PolicyParameters, carry: Carry, steps: Sequence[Step]) -> Carry:
        """The state after taking ``steps`` from ``carry`` (no gradients are recorded)."""
        import torch

        with torch.no_grad():
            for key, action in steps:
                hidden, cell = self._cell(parameters, carry)
                _, _, embed = self._point(parameters, key)
                carry = Carry(hidden, cell, embed[action])
        return carry

    def _run(self, parameters: PolicyParameters, steps: Sequence[Step]) -> list[torch.Tensor]:
        """The action distribution at every step of ``steps``, with gradients."""
        carry = self.start(parameters)
        distributions = []
        for key, action in steps:
            distribution, embed, carry = self.step(parameters, carry, key)
            distributions.append(distribution)
            carry = dataclasses.replace(carry, inputs=embed[action])
        return distributions

    def probabilities(self, parameters: PolicyParameters, steps: Sequence[Step], key: str) -> np.ndarray:
        """The probability of each action of decision point ``key`` after ``steps``."""
        import torch

        with torch.no_grad():
            distribution, _, _ = self.step(parameters, self.advance(parameters, self.start(parameters), steps), key)
        return np.array(distribution.tolist(), dtype=np.float64)

    def sequence_probability(self, parameters: PolicyParameters, steps: Sequence[Step]) -> float:
        """The probability that the policy writes exactly ``steps``."""
        import torch

        with torch.no_grad():
            distributions = self._run(parameters, steps)
        return float(math.prod(float(d[action]) for d, (_, action) in zip(distributions, steps, strict=True)))

    def log_prob_and_entropy(self, parameters: PolicyParameters, steps: Sequence[Step]) -> tuple[Any, Any]:
        """Sum of the log-probabilities of ``steps`` and of the entropies of their distributions,
        as tensors with gradients (every point of ``steps`` must be in ``parameters``).
        """
        import torch

        distributions = self._run(parameters, steps)
        tiny = torch.finfo(torch.float64).tiny  # a probability that underflowed to 0 stays finite in the log
        log_prob = torch.zeros((), dtype=torch.float64)
        entropy = torch.zeros((), dtype=torch.float64)
        for distribution, (_, action) in zip(distributions, steps, strict=True):
            logs = torch.log(distribution.clamp_min(tiny))
            log_prob = log_prob + logs[action]
            entropy = entropy - (distribution * logs).sum()
        return log_prob, entropy


@dataclasses.dataclass
class Adam:
    """Adam (Kingma & Ba 2015) over named tensors, with moments for parameters added on the way.

    Attributes:
        learning_rate: Step size.
        beta1: Decay of the first moment.
        beta2: Decay of the second moment.
        epsilon: Added to the second moment's root.
    """

    learning_rate: float
    beta1: float = 0.9
    beta2: float = 0.999
    epsilon: float = 1e-8

    def step(
        self,
        parameters: PolicyParameters,
        gradients: dict[str, torch.Tensor],
        moments: dict[str, tuple[torch.Tensor, torch.Tensor, int]],
    ) -> None:
        """One descent step: ``parameters[name]`` is replaced by a new tensor (never changed in place,
        so copies of the dict that share tensors stay as they were); ``moments`` holds
        ``(first, second, steps)`` per parameter and is updated the same way.
        """
        import torch

        for name, gradient in gradients.items():
            first, second, count = moments.get(name) or (torch.zeros_like(gradient), torch.zeros_like(gradient), 0)
            count += 1
            first = self.beta1 * first + (1 - self.beta1) * gradient
            second = self.beta2 * second + (1 - self.beta2) * gradient * gradient
            corrected_first = first / (1 - self.beta1**count)
            corrected_second = second / (1 - self.beta2**count)
            parameters[name] = parameters[name] - self.learning_rate * corrected_first / (
                torch.sqrt(corrected_second) + self.epsilon
            )
            moments[name] = (first, second, count)
