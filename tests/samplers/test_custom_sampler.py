"""The README's example sampler, written on the public base only, passes Optuna's shared suite."""

import importlib.util
import os

import optuna
import pytest
from _helpers import nb201_score
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "custom_sampler.py")
_spec = importlib.util.spec_from_file_location("custom_sampler", EXAMPLE)
custom_sampler = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(custom_sampler)
BanditSampler = custom_sampler.BanditSampler


class TestBanditSamplerSharedSuite(BasicSamplerTestCase, MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: BanditSampler(seed=0)


def test_example_sampler_uses_only_public_names():
    with open(EXAMPLE) as f:
        source = f.read()
    assert "._" not in source.replace("__", "")


def test_example_sampler_learns_and_rebuilds_from_storage():
    study = optuna.create_study(direction="maximize", sampler=BanditSampler(seed=0, epsilon=0.1))
    study.optimize(nb201_score, n_trials=80)
    first, last = study.trials[:20], study.trials[-20:]
    assert sum(t.value for t in last) > sum(t.value for t in first)
    assert len({tuple(t.params.values()) for t in study.trials}) == 80
    assert BanditSampler(seed=0).learned_state(study) == study.sampler.learned_state(study)
