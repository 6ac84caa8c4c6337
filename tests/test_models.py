import pytest
import torch

from optuna_nas import models
from optuna_nas import spaces
from optuna_nas.spaces import CellBlock
from optuna_nas.spaces import CellSpec
from optuna_nas.spaces import ChainLayer
from optuna_nas.spaces import ChainSpec
from optuna_nas.spaces import NASBench201Spec

SHAPES = [(1, 28, 28), (3, 32, 32), (1, 8, 8), (3, 16, 16), (2, 7, 11)]


@pytest.mark.parametrize("name", spaces.PNAS_OPS + spaces.NB201_OPS)
@pytest.mark.parametrize("stride", [1, 2])
def test_every_space_op_is_registered_and_keeps_channels(name, stride):
    op = models.create_op(name, 8, stride)
    out = op(torch.randn(2, 8, 9, 9))
    assert out.shape == (2, 8, 9 if stride == 1 else 5, 9 if stride == 1 else 5)


def test_unknown_op_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"op must be one of \[.*sep_conv_3x3.*\], got .conv_9x9."):
        models.create_op("conv_9x9", 8)


@pytest.mark.parametrize(
    "spec",
    [
        ChainSpec(
            layers=(
                ChainLayer("conv", 7, 8, 2),
                ChainLayer("max_pool"),
                ChainLayer("max_pool"),
                ChainLayer("conv", 3, 8, 2),
                ChainLayer("fc", units=16),
            )
        ),
        ChainSpec(layers=(ChainLayer("avg_pool"),)),
        CellSpec(
            blocks=(
                CellBlock(0, "sep_conv_5x5", 1, "identity"),
                CellBlock(2, "conv_1x7_7x1", 0, "dil_conv_3x3"),
                CellBlock(3, "max_pool_3x3", 1, "avg_pool_3x3"),
            ),
            cells_per_stage=2,
            stages=3,
            channels=8,
        ),
        CellSpec(blocks=(CellBlock(1, "identity", 1, "identity"),), stages=2, channels=4),
        NASBench201Spec(ops=("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3", "none")),
    ],
    ids=["chain", "chain-pool-only", "cell", "cell-identity", "nb201"],
)
@pytest.mark.parametrize("shape", SHAPES)
def test_build_model_fits_any_input_shape_and_class_count(spec, shape):
    model = models.build_model(spec, input_shape=shape, num_classes=7)
    out = model(torch.randn(3, *shape))
    assert out.shape == (3, 7)
    out.sum().backward()
    first = next(model.parameters())
    assert first.grad is not None and first.grad.abs().sum() > 0


def test_nasbench201_network_matches_the_benchmarks_size():
    # The benchmark reports 1.5313 M parameters for the all-3x3-conv cell on CIFAR-10.
    spec = NASBench201Spec(ops=("nor_conv_3x3",) * 6)
    model = models.build_model(spec, input_shape=(3, 32, 32), num_classes=10)
    assert sum(p.numel() for p in model.parameters()) == pytest.approx(1_531_300, rel=1e-3)


def test_build_model_rejects_bad_shapes_and_specs():
    spec = ChainSpec(layers=(ChainLayer("max_pool"),))
    with pytest.raises(ValueError, match="input_shape"):
        models.build_model(spec, input_shape=(28, 28), num_classes=10)
    with pytest.raises(ValueError, match="num_classes"):
        models.build_model(spec, input_shape=(1, 28, 28), num_classes=0)
    with pytest.raises(ValueError, match="no model builder"):
        models.build_model(object(), input_shape=(1, 28, 28), num_classes=10)


@pytest.mark.parametrize("input_size", [5, 8, 11, 28])
def test_chain_sizes_of_the_space_are_the_sizes_of_the_network(input_size):
    """Even kernels included: the space's legality rules follow the sizes the built network has."""
    import optuna

    space = spaces.ChainSpace(max_layers=5, input_size=input_size, kernel_sizes=(1, 2, 3, 4), strides=(1, 2))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=input_size))
    for _ in range(30):
        spec = space.suggest(study.ask())
        model = models.build_model(spec, input_shape=(1, input_size, input_size), num_classes=3)
        x = torch.zeros(2, 1, input_size, input_size)
        measured = []
        for module in model.children() if not isinstance(model, torch.nn.Sequential) else model:
            x = module(x)
            if isinstance(module, (torch.nn.Conv2d, torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
                measured.append(x.shape[-1])
        expected, size = [], input_size
        for layer in spec.layers:
            if layer.type == "fc":
                break
            size = (
                spaces.conv_output_size(size, kernel=layer.kernel, stride=layer.stride)
                if layer.type == "conv"
                else (spaces.pool_output_size(size))
            )
            expected.append(size)
        assert measured == expected, spec
