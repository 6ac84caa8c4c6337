"""Image classification data held in memory as tensors, split once with a fixed seed."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclasses.dataclass(frozen=True)
class ImageDataset:
    """Train / validation / test splits of one dataset, normalised with the train split's statistics.

    Attributes:
        name: The dataset's name, as given to :func:`optuna_nas.data.load`.
        train_x, val_x, test_x: Float tensors of shape ``(N, C, H, W)``.
        train_y, val_y, test_y: Int64 class labels of shape ``(N,)``.
        num_classes: Number of classes.
    """

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        channels, height, width = self.train_x.shape[1:]
        return channels, height, width

    def summary(self) -> dict[str, object]:
        """Sizes and shape, JSON-safe."""
        return {
            "name": self.name,
            "train": len(self.train_y),
            "val": len(self.val_y),
            "test": len(self.test_y),
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }
