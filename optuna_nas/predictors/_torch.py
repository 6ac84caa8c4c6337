"""The torch side of the neural ensembles, imported only when one is fitted or asked to predict."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

#: Every tensor of the ensembles' math has this type, whatever torch's default is.
DTYPE = torch.float32


@contextlib.contextmanager
def threads(num_threads: int | None) -> Iterator[None]:
    """Run torch on ``num_threads`` threads inside the block (``None``: as it is), then restore it."""
    if num_threads is None:
        yield
        return
    previous = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def generator(seed: int) -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(seed)


def initialize(model: nn.Module, rng: torch.Generator) -> None:
    """Draw every parameter from ``rng``: PyTorch's default laws, without its global generator."""
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                for parameter in module.parameters(recurse=False):
                    parameter.uniform_(-bound, bound, generator=rng)
            elif isinstance(module, nn.LSTM):
                bound = 1.0 / math.sqrt(module.hidden_size)
                for parameter in module.parameters(recurse=False):
                    parameter.uniform_(-bound, bound, generator=rng)
            elif isinstance(module, nn.Embedding):
                module.weight.normal_(0.0, 1.0, generator=rng)
                if module.padding_idx is not None:
                    module.weight[module.padding_idx].zero_()


def mlp(width: int, hidden_sizes: Sequence[int]) -> nn.Module:
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [nn.Linear(width, size, dtype=DTYPE), nn.ReLU()]
        width = size
    layers.append(nn.Linear(width, 1, dtype=DTYPE))
    return nn.Sequential(*layers)


class SequenceRegressor(nn.Module):
    """Token embeddings, a one-layer LSTM, and a linear head on the state after the last real token."""

    def __init__(self, vocabulary_size: int, embedding_dim: int, hidden_size: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocabulary_size, embedding_dim, padding_idx=0, dtype=DTYPE)
        self.lstm = nn.LSTM(embedding_dim, hidden_size, batch_first=True, dtype=DTYPE)
        self.head = nn.Linear(hidden_size, 1, dtype=DTYPE)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        # Sequences are padded on the right, so the state at a sequence's last token has seen no padding.
        outputs, _ = self.lstm(self.embedding(tokens))
        scores: torch.Tensor = self.head(outputs[torch.arange(len(tokens)), lengths - 1])
        return scores


def train(
    model: nn.Module,
    inputs: Sequence[torch.Tensor],
    targets: torch.Tensor,
    *,
    loss: str,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    rng: torch.Generator,
    trim: Callable[[Sequence[torch.Tensor]], Sequence[torch.Tensor]] | None = None,
) -> None:
    """Adam on mini-batches drawn in an order from ``rng``; ``trim`` may cut a batch's padding."""
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    criterion: nn.Module = nn.L1Loss() if loss == "l1" else nn.MSELoss()
    n = len(targets)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(n, generator=rng)
        for start in range(0, n, batch_size):
            batch = order[start : start + batch_size]
            batch_inputs = [tensor[batch] for tensor in inputs]
            if trim is not None:
                batch_inputs = list(trim(batch_inputs))
            optimizer.zero_grad()
            criterion(model(*batch_inputs).squeeze(-1), targets[batch]).backward()
            optimizer.step()
    model.eval()


def predict(model: nn.Module, inputs: Sequence[torch.Tensor]) -> np.ndarray:
    with torch.no_grad():
        scores: np.ndarray = model(*inputs).squeeze(-1).to(torch.float64).numpy()
    return scores


def padded(sequences: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences as one int64 tensor padded with 0 on the right, and their lengths."""
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.int64)
    tokens = torch.zeros((len(sequences), int(lengths.max())), dtype=torch.int64)
    for row, sequence in enumerate(sequences):
        tokens[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.int64)
    return tokens, lengths


def trim_padding(batch: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    tokens, lengths = batch
    return tokens[:, : int(lengths.max())], lengths
