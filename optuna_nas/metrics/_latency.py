"""Latency: median forward time of one sample on a device."""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

from torch import nn

from optuna_nas._validation import check_int


def measure_latency(
    model: nn.Module,
    *,
    input_shape: Sequence[int],
    device: str = "cpu",
    warmup: int = 5,
    repeats: int = 20,
) -> float:
    """Median forward time of one sample, in milliseconds, after ``warmup`` untimed passes.

    The model is put in eval mode; on CUDA each pass is synchronised before the clock stops.

    Raises:
        ValueError: ``warmup`` is negative or ``repeats`` is below 1.
    """
    import torch

    check_int("warmup", warmup, minimum=0)
    check_int("repeats", repeats, minimum=1)
    dev = torch.device(device)
    was_training = model.training
    model.eval()
    sample = torch.zeros(1, *input_shape, device=dev)
    times = []
    with torch.inference_mode():
        for index in range(warmup + repeats):
            start = time.perf_counter()
            model(sample)
            if dev.type == "cuda":
                torch.cuda.synchronize(dev)
            if index >= warmup:
                times.append((time.perf_counter() - start) * 1000.0)
    model.train(was_training)
    return statistics.median(times)
