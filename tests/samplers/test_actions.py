"""Actions stay on the distribution's grid: a value drawn for an action belongs to that action."""

import math

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.distributions import IntDistribution

from optuna_nas.samplers import ActionSpace
from optuna_nas.samplers import AgingEvolutionSampler

DISTRIBUTIONS = [
    FloatDistribution(0.0, 1.0, step=0.25),
    FloatDistribution(0.0, 10.0, step=0.1),
    FloatDistribution(1e-5, 1e-1, log=True),
    FloatDistribution(-3.0, 7.0),
    IntDistribution(0, 1000),
    IntDistribution(0, 1000, step=8),
    IntDistribution(1, 20, log=True),
    IntDistribution(1, 10**9, log=True),
    IntDistribution(3, 9),
    CategoricalDistribution(["a", None, 3]),
]


@pytest.mark.parametrize("distribution", DISTRIBUTIONS, ids=repr)
def test_every_draw_lands_in_the_action_that_was_chosen(distribution):
    actions = ActionSpace(distribution, 10)
    rng = np.random.default_rng(0)
    for action in range(actions.size):
        for _ in range(50):
            value = actions.value_of(action, rng)
            assert actions.action_of(value) == action
            assert distribution._contains(distribution.to_internal_repr(value))
            assert type(value) in (int, float, str, type(None))


def test_stepped_float_with_few_values_is_one_action_per_value():
    actions = ActionSpace(FloatDistribution(0.0, 1.0, step=0.25), 10)
    assert actions.exact and actions.size == 5
    assert actions.values() == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_log_int_groups_are_never_empty():
    actions = ActionSpace(IntDistribution(1, 20, log=True), 10)
    rng = np.random.default_rng(0)
    assert 1 < actions.size <= 10
    seen = {actions.action_of(actions.value_of(a, rng)) for a in range(actions.size)}
    assert seen == set(range(actions.size))


def test_evolution_mutation_of_a_stepped_float_never_snaps_back_to_the_parent():
    def objective(trial):
        x = trial.suggest_float("x", 0.0, 1.0, step=0.05)
        y = trial.suggest_int("y", 0, 100)
        return -abs(x - 0.4) - abs(y - 30) / 100

    sampler = AgingEvolutionSampler(population_size=4, sample_size=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=60)
    children = [t for t in study.trials if "AgingEvolutionSampler:parent" in t.system_attrs]
    assert len(children) > 40
    for child in children:
        parent = study.trials[child.system_attrs["AgingEvolutionSampler:parent"]]
        mutation = child.system_attrs["AgingEvolutionSampler:mutation"]
        assert not math.isclose(child.params[mutation], parent.params[mutation])
        assert all(child.params[k] == parent.params[k] for k in child.params if k != mutation)
