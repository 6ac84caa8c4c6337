import os

import numpy as np
import pytest
import torch

from optuna_nas import data


def test_mnist5k_loads_offline_with_disjoint_seeded_splits():
    dataset = data.load("mnist5k")
    assert dataset.input_shape == (1, 28, 28)
    assert dataset.num_classes == 10
    assert len(dataset.train_y) + len(dataset.val_y) + len(dataset.test_y) == 5000
    assert abs(float(dataset.train_x.mean())) < 1e-3
    again = data.load("mnist5k")
    assert torch.equal(again.val_x, dataset.val_x)
    other = data.load("mnist5k", seed=1)
    assert not torch.equal(other.val_x, dataset.val_x)
    rows = {tuple(x.flatten()[::7].tolist()) for x in dataset.test_x}
    assert not any(tuple(x.flatten()[::7].tolist()) in rows for x in dataset.train_x[:500])


def test_digits_splits_are_stratified(digits):
    assert digits.input_shape == (1, 8, 8)
    counts = torch.bincount(digits.val_y, minlength=10)
    assert counts.min() >= 15


def _write_idx(path, array):
    header = b"\x00\x00\x08" + bytes([array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    with open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_mnist_reads_a_local_torchvision_folder(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    os.makedirs(raw)
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 60), ("t10k", 20)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", rng.integers(0, 255, (n, 28, 28)))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", np.arange(n) % 10)
    dataset = data.load("mnist", root=str(tmp_path), val_fraction=0.2)
    assert dataset.input_shape == (1, 28, 28)
    assert (len(dataset.train_y), len(dataset.val_y), len(dataset.test_y)) == (50, 10, 20)


def test_missing_torchvision_dataset_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        data.load("cifar10", root=str(tmp_path))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"name": "imagenet"}, "imagenet"),
        ({"val_fraction": 0}, "val_fraction"),
        ({"val_fraction": 0.6, "test_fraction": 0.5}, "val_fraction"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        data.load(**kwargs)
