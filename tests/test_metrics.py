import pytest
from torch import nn

from optuna_nas import metrics


def test_counts_params_macs_and_flops_as_twice_the_macs():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1, bias=False), nn.Flatten(), nn.Linear(4 * 8 * 8, 10))
    cost = metrics.count_cost(model, input_shape=(1, 8, 8))
    assert cost.params == 36 + 256 * 10 + 10
    conv_macs = 4 * 8 * 8 * 9
    linear_macs = 256 * 10
    assert cost.macs == conv_macs + linear_macs
    assert cost.flops == 2 * cost.macs


def test_counting_leaves_the_model_untouched():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4))
    before = set(dict(model.named_buffers()))
    model.train()
    metrics.count_cost(model, input_shape=(1, 8, 8))
    assert set(dict(model.named_buffers())) == before
    assert model.training


def test_latency_is_a_positive_median_in_milliseconds():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    latency = metrics.measure_latency(model, input_shape=(1, 8, 8), warmup=1, repeats=5)
    assert 0 < latency < 1000
    with pytest.raises(ValueError, match="repeats"):
        metrics.measure_latency(model, input_shape=(1, 8, 8), repeats=0)
