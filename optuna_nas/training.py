"""The training loop: minibatch training over image tensors resident on the device.

The objectives train every candidate with :func:`train`, and ``analysis.export`` retrains with it;
it is public so that a found architecture can be trained the same way by hand:

    >>> import torch
    >>> from optuna_nas import models, spaces, training
    >>> spec = spaces.ChainSpec(layers=(spaces.ChainLayer(type="fc", units=8),))
    >>> model = models.build_model(spec, input_shape=(1, 8, 8), num_classes=3)
    >>> x, y = torch.randn(32, 1, 8, 8), torch.randint(0, 3, (32,))
    >>> curve = training.train(model, x, y, x, y, training.TrainingSettings(epochs=2, batch_size=8), seed=0)
    >>> len(curve), all(0.0 <= accuracy <= 1.0 for accuracy in curve)
    (2, True)

Importing this module imports torch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

OPTIMIZERS = ("adam", "sgd", "adamw")
#: Inside an epoch, progress is reported at most this often.
BATCH_PROGRESS_SECONDS = 2.0


def resolve_device(device: str) -> torch.device:
    """``auto`` is CUDA when present, else the CPU; anything else is passed to ``torch.device``.

    Raises:
        ValueError: ``device`` is not a device name torch knows, or is CUDA with none present.
    """
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError, OverflowError):
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
    #: Training batches run through the network to re-estimate its BatchNorm statistics before each
    #: evaluation (0: evaluate with the running averages kept during training).
    bn_recalibration_batches: int = 4


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def make_optimizer(model: nn.Module, settings: TrainingSettings) -> torch.optim.Optimizer:
    """The optimizer ``settings`` name (``adam``, ``sgd`` with Nesterov momentum 0.9, ``adamw``) over ``model``."""
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


def autocast_for(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on a CUDA device that supports it; nothing elsewhere."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: nn.Module, device: torch.device) -> nn.Module:
    """Move ``model`` to ``device``; channels-last memory on CUDA, where convs run faster that way."""
    model = model.to(device)
    if device.type == "cuda":
        return model.to(memory_format=torch.channels_last)
    return model


def prepare_images(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Move a whole split to ``device`` once (channels-last on CUDA), so batches never cross the bus."""
    if device.type == "cuda":
        return images.to(device, non_blocking=True).contiguous(memory_format=torch.channels_last)
    return images.to(device)


def count_batches(count: int, batch_size: int) -> int:
    """Batches in an epoch of ``count`` images.

    A last batch of one image is dropped (batch norm cannot train on it) unless it is the only one.
    """
    full, rest = divmod(count, batch_size)
    return full + (1 if rest >= 2 or (rest == 1 and full == 0) else 0)


def train_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    batch_size: int,
    generator: torch.Generator,
    on_batch: Callable[[int, int], None] | None = None,
) -> float:
    """One pass over ``images`` in a random order; returns the mean training loss.

    The loss is summed on the device and read once per epoch, so the loop never waits on the device
    between batches. ``on_batch(batches_done, batches)`` runs after a batch when
    :data:`BATCH_PROGRESS_SECONDS` have passed since the epoch began or since it last ran, and
    never after the last batch (the epoch's end is reported by the caller).

    Raises:
        NonFiniteLossError: The epoch's loss is NaN or infinite.
    """
    model.train()
    device = images.device
    count = len(labels)
    batches = count_batches(count, batch_size)
    order = torch.randperm(count, generator=generator).to(device)
    total = torch.zeros((), device=device)
    autocast = autocast_for(device)
    report_at = time.monotonic() + BATCH_PROGRESS_SECONDS
    for done in range(1, batches + 1):
        index = order[(done - 1) * batch_size : done * batch_size]
        with autocast:
            loss = F.cross_entropy(model(images[index]), labels[index])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]  # torch leaves Tensor.backward unannotated
        optimizer.step()
        total += loss.detach().float() * len(index)
        if on_batch is not None and done < batches and time.monotonic() >= report_at:
            on_batch(done, batches)
            report_at = time.monotonic() + BATCH_PROGRESS_SECONDS
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


def recalibrate_batchnorm(
    model: nn.Module,
    images: torch.Tensor,
    *,
    batches: int,
    batch_size: int,
    generator: torch.Generator | None = None,
) -> None:
    """Re-estimate the running statistics of every BatchNorm layer of ``model`` from ``images``.

    During a short training the running averages (momentum 0.1) trail the weights, which are still
    changing fast, so evaluation mode normalises each layer with statistics of earlier networks and
    the errors compound with depth: a NAS-Bench-201 network after one epoch on mnist5k can score
    near chance in evaluation mode and above 80 % with the statistics of its current weights. This
    is the remedy of one-shot NAS: reset the statistics and run ``batches`` batches of
    ``batch_size`` images in training mode, without gradients, with a cumulative average (torch's
    ``torch.optim.swa_utils.update_bn``), so each layer's running mean and variance become the mean
    of the batches' means and of their unbiased variances.

    Only the BatchNorm buffers change: weights, optimizer state and every random generator but
    ``generator`` are left as they were, and running statistics do not enter a training-mode
    forward pass, so training that goes on afterwards is exactly what it would have been. A model
    without BatchNorm is left untouched. The model is left in the mode it was in.

    Args:
        model: The network.
        images: Images to draw from (training images, on the model's device).
        batches: How many batches to run; fewer when ``images`` has fewer.
        batch_size: Images per batch (the training batch size, so the statistics are those of the
            batches the network learned with).
        generator: Draws which images, in which order; ``None`` takes the first ones in order.
    """
    from torch.optim.swa_utils import update_bn

    count = min(len(images), batches * batch_size)
    if generator is None:
        chosen = images[:count]
    else:
        chosen = images[torch.randperm(len(images), generator=generator)[:count].to(images.device)]
    # A last batch of one image would make a training-mode BatchNorm1d fail, as in train_epoch.
    used = count_batches(count, batch_size)
    with autocast_for(images.device):
        update_bn((chosen[i * batch_size : (i + 1) * batch_size] for i in range(used)), model)


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
    during_epoch: Callable[[int, int, int], None] | None = None,
) -> list[float]:
    """Train for ``settings.epochs`` epochs; returns the validation accuracy after each.

    Before each evaluation the BatchNorm statistics are recalibrated on
    ``settings.bn_recalibration_batches`` training batches (see :func:`recalibrate_batchnorm`); the
    model keeps the recalibrated statistics, which the next epoch's training does not read.

    ``after_epoch(epoch, train_loss, val_accuracy)`` runs after every epoch (1-based) and may raise
    to stop training (pruning, MetaQNN's early stop). ``during_epoch(epoch, batches_done, batches)``
    runs as each epoch begins (``batches_done`` 0) and then every
    :data:`BATCH_PROGRESS_SECONDS` or so inside it.
    """
    optimizer = make_optimizer(model, settings)
    generator = torch.Generator().manual_seed(seed)
    # Its own generator, so the batch order of training is the same whether or not evaluations
    # recalibrate.
    recalibration_generator = torch.Generator().manual_seed(seed)
    batches = count_batches(len(train_y), settings.batch_size)
    curve = []
    for epoch in range(1, settings.epochs + 1):
        on_batch = None
        if during_epoch is not None:
            during_epoch(epoch, 0, batches)
            on_batch = functools.partial(during_epoch, epoch)
        loss = train_epoch(
            model,
            optimizer,
            train_x,
            train_y,
            batch_size=settings.batch_size,
            generator=generator,
            on_batch=on_batch,
        )
        if settings.bn_recalibration_batches > 0:
            recalibrate_batchnorm(
                model,
                train_x,
                batches=settings.bn_recalibration_batches,
                batch_size=settings.batch_size,
                generator=recalibration_generator,
            )
        accuracy = evaluate(model, val_x, val_y)
        curve.append(accuracy)
        if after_epoch is not None:
            after_epoch(epoch, loss, accuracy)
    return curve
