"""Duplicate avoidance: cut-short trials hide nothing, decided ones count, canonical keys merge."""

import itertools

import optuna
import pytest
from _helpers import NB201
from _propose import SMALL

from optuna_nas import spaces
from optuna_nas.samplers import create_sampler
from optuna_nas.samplers import mark_decided

SAMPLERS = ["metaqnn", "evolution", "reinforce"]


def _tiny(trial):
    a = trial.suggest_categorical("a", ["x", "y"])
    if trial.number == 0:
        raise optuna.TrialPruned()  # cut short: "b" was never decided
    b = trial.suggest_categorical("b", [1, 2])
    mark_decided(trial)
    return {"x": 1.0, "y": 2.0}[a] * b


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_trial_cut_short_hides_none_of_the_architectures_after_its_prefix(name):
    study = optuna.create_study(direction="maximize", sampler=create_sampler(name, seed=0, **SMALL[name]))
    study.enqueue_trial({"a": "x"})
    study.optimize(_tiny, n_trials=5)
    assert study.trials[0].state == optuna.trial.TrialState.PRUNED
    whole = {(t.params["a"], t.params["b"]) for t in study.trials[1:]}
    assert whole == {("x", 1), ("x", 2), ("y", 1), ("y", 2)}


@pytest.mark.parametrize("name", SAMPLERS)
def test_nb201_trial_pruned_after_its_first_edge_hides_nothing(name):
    def objective(trial):
        if trial.number == 0:
            trial.suggest_categorical("edge_0_to_1", spaces.NB201_OPS)
            raise optuna.TrialPruned()
        spec = NB201.suggest(trial)
        return float(spec.ops.count("nor_conv_3x3"))

    study = optuna.create_study(direction="maximize", sampler=create_sampler(name, seed=0, **SMALL[name]))
    study.enqueue_trial({"edge_0_to_1": "none"})
    study.optimize(objective, n_trials=80)
    assert any(t.params["edge_0_to_1"] == "none" for t in study.trials[1:])


@pytest.mark.parametrize("name", SAMPLERS)
def test_a_trial_pruned_after_its_decisions_counts_as_evaluated(name):
    def objective(trial):
        a = trial.suggest_categorical("a", ["x", "y", "z"])
        b = trial.suggest_categorical("b", [1, 2, 3])
        mark_decided(trial)
        if trial.number % 2:
            raise optuna.TrialPruned()  # pruned in training: the architecture was evaluated
        return {"x": 1.0, "y": 2.0, "z": 3.0}[a] * b

    study = optuna.create_study(direction="maximize", sampler=create_sampler(name, seed=0, **SMALL[name]))
    study.optimize(objective, n_trials=9)
    assert len({tuple(t.params.values()) for t in study.trials}) == 9


def _nb201_key(ops):
    return NB201.dedup_key(
        dict(
            zip(
                ["edge_0_to_1", "edge_0_to_2", "edge_1_to_2", "edge_0_to_3", "edge_1_to_3", "edge_2_to_3"],
                ops,
                strict=True,
            )
        )
    )


@pytest.mark.parametrize(
    "first, second",
    [
        # Node 3 reads only the input: ops on every other edge are dead.
        (
            ("nor_conv_3x3", "skip_connect", "avg_pool_3x3", "nor_conv_1x1", "none", "none"),
            ("none", "none", "none", "nor_conv_1x1", "none", "none"),
        ),
        # Nodes 1 and 2 swapped: the sum at node 3 is unordered.
        (
            ("nor_conv_3x3", "avg_pool_3x3", "none", "none", "skip_connect", "nor_conv_1x1"),
            ("avg_pool_3x3", "nor_conv_3x3", "none", "none", "nor_conv_1x1", "skip_connect"),
        ),
        # Output cut off from the input: every such cell computes the same thing.
        (
            ("none", "none", "nor_conv_3x3", "none", "skip_connect", "none"),
            ("nor_conv_1x1", "none", "none", "none", "none", "none"),
        ),
        # Node 1 feeds nothing that reaches the output.
        (
            ("nor_conv_3x3", "skip_connect", "none", "nor_conv_1x1", "none", "nor_conv_3x3"),
            ("avg_pool_3x3", "skip_connect", "none", "nor_conv_1x1", "none", "nor_conv_3x3"),
        ),
    ],
)
def test_nb201_cells_that_compute_the_same_function_share_a_key(first, second):
    assert _nb201_key(first) == _nb201_key(second)


@pytest.mark.parametrize(
    "first, second",
    [
        (("nor_conv_3x3",) * 6, ("nor_conv_1x1",) + ("nor_conv_3x3",) * 5),
        # The same ops, on edges that make another graph.
        (
            ("nor_conv_3x3", "none", "skip_connect", "none", "none", "nor_conv_1x1"),
            ("nor_conv_3x3", "skip_connect", "none", "none", "none", "nor_conv_1x1"),
        ),
        # Order along a path matters: conv then pool is not pool then conv.
        (
            ("nor_conv_3x3", "none", "avg_pool_3x3", "none", "none", "skip_connect"),
            ("avg_pool_3x3", "none", "nor_conv_3x3", "none", "none", "skip_connect"),
        ),
    ],
)
def test_nb201_cells_that_differ_have_different_keys(first, second):
    assert _nb201_key(first) != _nb201_key(second)


def test_dedup_key_is_none_until_the_architecture_is_whole_and_keeps_other_params():
    assert NB201.dedup_key({"edge_0_to_1": "none"}) is None
    chain = spaces.ChainSpace(max_layers=3, input_size=8)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(lambda t: float(len(chain.suggest(t).layers)), n_trials=1)
    params = study.trials[0].params
    assert chain.dedup_key(dict(list(params.items())[:1])) is None
    assert chain.dedup_key(params) is not None
    assert chain.dedup_key({**params, "lr": 0.1}) != chain.dedup_key({**params, "lr": 0.2})


@pytest.mark.parametrize("name", SAMPLERS)
def test_samplers_with_the_canonical_key_never_evaluate_one_function_twice(name):
    def objective(trial):
        return float(NB201.suggest(trial).ops.count("nor_conv_3x3"))

    sampler = create_sampler(name, seed=0, dedup_key=NB201.dedup_key, **SMALL[name])
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=60)
    keys = [NB201.dedup_key(t.params) for t in study.trials]
    assert len(set(keys)) == len(keys)


def test_all_nb201_cells_reduce_to_fewer_keys():
    keys = {_nb201_key(ops) for ops in itertools.product(spaces.NB201_OPS, repeat=6)}
    assert 5000 < len(keys) < 15625
