"""The training loop the objectives share: minibatch SGD over tensors resident on the device."""

from __future__ import annotations

import contextlib
import dataclasses
import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F

OPTIMIZERS = ("adam", "sgd", "adamw")


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; anything else is passed to ``torch.device``.

    Raises:
        ValueError: ``device`` is not a device name torch knows, or is CUDA with none present.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu' or a torch device such as 'cuda:0', got {device!r}.") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for, but CUDA is not available here.")
    return resolved


@dataclasses.dataclass(frozen=True)
class TrainingSettings:
    """How a network is trained."""

    epochs: int = 3
    batch_size: int = 128
    learning_rate: float = 1e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def make_optimizer(model: nn.Module, settings: TrainingSettings) -> torch.optim.Optimizer:
    params = model.parameters()
    if settings.optimizer == "sgd":
        return torch.optim.SGD(
            params,
            lr=settings.learning_rate,
            momentum=0.9,
            nesterov=True,
            weight_decay=settings.weight_decay,
        )
    optimizer_type = torch.optim.AdamW if settings.optimizer == "adamw" else torch.optim.Adam
    return optimizer_type(params, lr=settings.learning_rate, weight_decay=settings.weight_decay)


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager:
    """bf16 autocast on a CUDA device that supports it; nothing elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device``; channels-last memory on CUDA, where convs run faster that way."""
    if device.type == "cuda":
        return model.to(device, memory_format=torch.channels_last)
    return model.to(device)


def prepare_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a whole split to ``device`` once (channels-last on CUDA), so batches never cross the bus."""
    if device.type == "cuda":
        return images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return images.to(device)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
) -> float:
    """One pass over ``images`` in a random order; returns the mean training loss.

    The loss is summed on the device and read once per epoch, so the loop never waits on the device
    between batches.

    Raises:
        NonFiniteLossError: The epoch's loss is NaN or infinite.
    """
    model.train()
    device = images.device
    count = len(labels)
    order = torch.randperm(count, generator=generator).to(device)
    total = torch.zeros((), device=device)
    autocast = autocast_for(device)
    for start in range(0, count, batch_size):
        index = order[start : start + batch_size]
        if len(index) < 2 and start > 0:
            break  # batch norm cannot train on a batch of one
        with autocast:
            loss = F.cross_entropy(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        total += loss.detach().float() * len(index)
    mean_loss = total.item() / count
    if not math.isfinite(mean_loss):
        raise NonFiniteLossError(f"training loss became {mean_loss}")
    return mean_loss


def evaluate(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, *, batch_size: int = 1024) -> float:
    """Accuracy of ``model`` on ``images``, as a fraction in [0, 1]."""
    model.eval()
    correct = torch.zeros((), device=images.device, dtype=torch.int64)
    with torch.inference_mode(), autocast_for(images.device):
        for start in range(0, len(labels), batch_size):
            logits = model(images[start : start + batch_size])
            correct += (logits.argmax(dim=1) == labels[start : start + batch_size]).sum()
    return correct.item() / max(1, len(labels))


def train(
    model: nn.Module,
    train_x: torch.Tensor,
    train_y: torch.Tensor,
    val_x: torch.Tensor,
    val_y: torch.Tensor,
    settings: TrainingSettings,
    *,
    seed: int,
    after_epoch: Callable[[int, float, float], None] | None = None,
) -> list[float]:
    """Train for ``settings.epochs`` epochs; returns the validation accuracy after each.

    ``after_epoch(epoch, train_loss, val_accuracy)`` runs after every epoch (1-based) and may raise
    to stop training (pruning, MetaQNN's early stop).
    """
    optimizer = make_optimizer(model, settings)
    generator = torch.Generator().manual_seed(seed)
    curve = []
    for epoch in range(1, settings.epochs + 1):
        loss = train_epoch(model, optimizer, train_x, train_y, batch_size=settings.batch_size, generator=generator)
        accuracy = evaluate(model, val_x, val_y)
        curve.append(accuracy)
        if after_epoch is not None:
            after_epoch(epoch, loss, accuracy)
    return curve
