"""Predictor-guided sampling: the candidate the predictor ranks best is the one trained."""

import logging

import numpy as np
import optuna
import pytest
from _helpers import NB201
from _helpers import SCORES
from _helpers import nb201_score
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase
from optuna.trial import TrialState

from optuna_nas import spaces
from optuna_nas.predictors import TreeEnsemble
from optuna_nas.samplers import AgingEvolutionSampler
from optuna_nas.samplers import MetaQNNSampler
from optuna_nas.samplers import PredictorGuidedSampler
from optuna_nas.samplers import ReinforceSampler
from optuna_nas.samplers import create_sampler

PREFIX = "PredictorGuidedSampler:"
ORACLE = "OracleGuided:"  # plan attrs are recorded under the sampler's class name


class OracleGuided(PredictorGuidedSampler):
    """Guided by the truth: a candidate's predicted score is its number of 3x3 convs."""

    def _predict(self, study, examples, params):
        convs = [NB201.spec_from_params(p).ops.count("nor_conv_3x3") for p in params]
        return np.array(convs, dtype=float), np.zeros(len(params))


def _guided(**options):
    evolution = AgingEvolutionSampler(population_size=8, sample_size=4, seed=options.pop("seed", 0))
    return PredictorGuidedSampler(evolution, space=NB201, **{"candidates": 20, "min_trials": 6, **options})


class TestGuidedSharedSuite(BasicSamplerTestCase, MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: _guided(min_trials=2, candidates=4, predictor=TreeEnsemble(n_estimators=5, seed=0))


def test_the_planned_trial_is_the_candidate_the_predictor_ranks_best():
    evolution = AgingEvolutionSampler(population_size=8, sample_size=4, seed=1)
    oracle = OracleGuided(evolution, space=NB201, candidates=30, min_trials=6)
    study = optuna.create_study(direction="maximize", sampler=oracle)
    study.optimize(nb201_score, n_trials=30)
    guided = [t for t in study.trials if ORACLE + "predicted" in t.system_attrs]
    assert len(guided) >= 20 and all(t.system_attrs[ORACLE + "candidates"] > 1 for t in guided)
    for trial in guided:  # what was trained is what was ranked best, and it was planned whole
        convs = NB201.spec_from_params(trial.params).ops.count("nor_conv_3x3")
        assert convs == trial.system_attrs[ORACLE + "predicted"]
        assert ORACLE + "unplanned" not in trial.system_attrs
    # An oracle guide reaches six 3x3 convs; unguided evolution with the same seed and budget does not.
    best = max(NB201.spec_from_params(t.params).ops.count("nor_conv_3x3") for t in study.trials)
    plain = optuna.create_study(
        direction="maximize", sampler=AgingEvolutionSampler(population_size=8, sample_size=4, seed=1)
    )
    plain.optimize(nb201_score, n_trials=30)
    assert best == 6 > max(NB201.spec_from_params(t.params).ops.count("nor_conv_3x3") for t in plain.trials)


def test_guided_evolution_beats_plain_evolution_on_the_stand_in():
    """Mean best score over seeds, same budget: the predictor helps."""
    guided, plain = [], []
    for seed in range(4):
        plain_sampler = AgingEvolutionSampler(population_size=8, sample_size=4, seed=seed)
        for sampler, results in ((_guided(seed=seed), guided), (plain_sampler, plain)):
            study = optuna.create_study(direction="maximize", sampler=sampler)
            study.optimize(nb201_score, n_trials=30)
            results.append(study.best_value)
    assert np.mean(guided) > np.mean(plain)


def test_before_min_trials_the_wrapped_sampler_decides_alone():
    guided = optuna.create_study(direction="maximize", sampler=_guided(min_trials=10))
    guided.optimize(nb201_score, n_trials=10)
    plain = optuna.create_study(
        direction="maximize", sampler=AgingEvolutionSampler(population_size=8, sample_size=4, seed=0)
    )
    plain.optimize(nb201_score, n_trials=10)
    assert [t.params for t in guided.trials] == [t.params for t in plain.trials]
    assert not any(PREFIX + "predicted" in t.system_attrs for t in guided.trials)


def test_the_predictor_learns_from_complete_feasible_trials_only_and_a_rebuild_agrees():
    sampler = _guided()
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def flaky(trial):
        value = nb201_score(trial)
        if trial.number % 5 == 1:
            raise optuna.TrialPruned()
        if trial.number % 5 == 2:
            raise RuntimeError("a failing trial")
        return value

    study.optimize(flaky, n_trials=25, catch=(RuntimeError,))
    state = sampler.learned_state(study)
    complete = [t.number for t in study.trials if t.state == TrialState.COMPLETE]
    assert [number for number, _, _ in state.examples] == complete
    assert [reward for _, _, reward in state.examples] == [study.trials[n].value for n in complete]
    fresh = _guided()
    rebuilt = fresh.learned_state(study)
    assert rebuilt.examples == state.examples and [e.number for e in rebuilt.base] == [e.number for e in state.base]
    # A new trial is planned alike by the sampler that ran the study and by a fresh one.
    trial = study.ask()
    frozen = study._storage.get_trial(trial._trial_id)
    assert fresh.plan(study, frozen, rebuilt, len(rebuilt.examples)) == sampler.plan(
        study, frozen, state, len(state.examples)
    )


@pytest.mark.parametrize(
    "base",
    [
        lambda: MetaQNNSampler(seed=0, epsilon_schedule=((1.0, 6), (0.3, 30))),
        lambda: ReinforceSampler(seed=0, hidden_size=8),
    ],
    ids=["metaqnn", "reinforce"],
)
def test_it_guides_the_other_samplers_too(base):
    sampler = PredictorGuidedSampler(base(), space=NB201, candidates=6, min_trials=4)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=12)
    guided = [t for t in study.trials if PREFIX + "predicted" in t.system_attrs]
    assert len(guided) >= 6
    assert len({tuple(t.params.values()) for t in study.trials}) == 12


def test_candidates_already_evaluated_are_never_planned():
    """A space of 9 architectures: 9 trials take all 9, each once."""

    class Tiny(spaces.Space):
        name = "tiny"

        def decide(self, decider):
            return spaces.NASBench201Spec(
                ops=(decider.categorical("a", ["none", "skip_connect", "nor_conv_3x3"]),)
                + ("skip_connect",) * 4
                + (decider.categorical("b", ["none", "skip_connect", "nor_conv_3x3"]),)
            )

    tiny = Tiny()
    sampler = PredictorGuidedSampler(
        AgingEvolutionSampler(population_size=3, sample_size=2, seed=0), space=tiny, candidates=10, min_trials=2
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(SCORES[tiny.suggest(t).ops[0]]), n_trials=9)
    assert len({(t.params["a"], t.params["b"]) for t in study.trials}) == 9


def test_trials_of_another_space_are_left_out_with_a_warning(caplog):
    sampler = _guided(min_trials=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with caplog.at_level(logging.WARNING):
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=6)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert "are not architectures of the space 'nb201'" in caplog.text


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"candidates": 0}, "candidates"),
        ({"candidates": 10_001}, "candidates"),
        ({"exploration": -1.0}, "exploration"),
        ({"exploration": float("nan")}, "exploration"),
        ({"exploration": float("inf")}, "exploration"),
        ({"min_trials": 1}, "min_trials"),
        ({"predictor": "forest"}, "predictor"),
        ({"space": "nb201"}, "space"),
    ],
)
def test_bad_arguments(kwargs, match):
    options = {"space": NB201, **kwargs}
    with pytest.raises(ValueError, match=match):
        PredictorGuidedSampler(AgingEvolutionSampler(seed=0), **options)


def test_bad_wrapped_samplers():
    with pytest.raises(ValueError, match="sampler must be one of the package's samplers"):
        PredictorGuidedSampler(optuna.samplers.TPESampler(), space=NB201)
    with pytest.raises(ValueError, match="cannot wrap another"):
        PredictorGuidedSampler(_guided(), space=NB201)
    with pytest.raises(ValueError, match="needs the search space"):
        create_sampler("evolution-guided", seed=0)


def test_the_named_sampler_is_guided_evolution_with_its_options():
    sampler = create_sampler("evolution-guided", seed=3, space=NB201, population_size=5, candidates=7)
    assert isinstance(sampler, PredictorGuidedSampler) and isinstance(sampler.sampler, AgingEvolutionSampler)
    assert sampler.seed == 3 and sampler.sampler._population_size == 5 and sampler._candidates == 7


def test_the_wrapped_samplers_own_views_of_what_they_learned_still_work():
    sampler = PredictorGuidedSampler(
        MetaQNNSampler(seed=0, epsilon_schedule=((1.0, 6), (0.3, 30))), space=NB201, candidates=4, min_trials=4
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=8)
    plain = MetaQNNSampler(seed=0, epsilon_schedule=((1.0, 6), (0.3, 30)))
    assert sampler.sampler.q_table(study) == plain.q_table(study)
    evolution = _guided()
    study = optuna.create_study(direction="maximize", sampler=evolution)
    study.optimize(nb201_score, n_trials=12)
    expected = AgingEvolutionSampler(population_size=8, sample_size=4, seed=0).population(study)
    assert [e.number for e in evolution.sampler.population(study)] == [e.number for e in expected]


def test_any_sampler_of_ours_can_be_guided_in_one_call():
    evolution = AgingEvolutionSampler(population_size=8, sample_size=4, seed=0)
    sampler = evolution.guided(space=NB201, candidates=20, min_trials=6)
    assert isinstance(sampler, PredictorGuidedSampler) and sampler._candidates == 20
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=12)
    again = optuna.create_study(direction="maximize", sampler=_guided())
    again.optimize(nb201_score, n_trials=12)
    assert [t.params for t in study.trials] == [t.params for t in again.trials]
    with pytest.raises(ValueError, match="candidates"):
        evolution.guided(space=NB201, candidates=0)


def test_without_a_plan_candidates_are_proposed_even_where_none_is_a_choice():
    """A decision the wrapped sampler did not plan (evolution's random start) is proposed, never
    taken as a plan of None: the candidates differ."""
    ops = [None, "skip_connect", "nor_conv_3x3"]

    class WithNone(spaces.Space):
        name = "with-none"

        def decide(self, decider):
            a, b = decider.categorical("a", ops), decider.categorical("b", ops)
            return spaces.NASBench201Spec(ops=(a or "none", *("skip_connect",) * 4, b or "none"))

    space = WithNone()
    evolution = AgingEvolutionSampler(population_size=100, sample_size=2, seed=0)  # never full: no plans
    sampler = PredictorGuidedSampler(evolution, space=space, candidates=8, min_trials=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(space.suggest(t).ops.count("nor_conv_3x3")), n_trials=4)
    guided = [t for t in study.trials if PREFIX + "candidates" in t.system_attrs]
    assert guided and all(t.system_attrs[PREFIX + "candidates"] > 1 for t in guided)


def test_with_a_canonical_key_cells_that_compute_one_function_are_one_candidate():
    ranked = []

    class Spy(PredictorGuidedSampler):
        def _predict(self, study, examples, params):
            ranked.append([NB201.dedup_key(p) for p in params])
            return np.zeros(len(params)), np.zeros(len(params))

    evolution = AgingEvolutionSampler(population_size=8, sample_size=4, seed=0, dedup_key=NB201.dedup_key)
    study = optuna.create_study(direction="maximize", sampler=Spy(evolution, space=NB201, candidates=40, min_trials=8))
    study.optimize(nb201_score, n_trials=20)
    # Mutating an edge no input-to-output path crosses makes the parent's function again: without
    # the key such children filled several of the predictor's slots.
    assert ranked and all(len(set(keys)) == len(keys) and None not in keys for keys in ranked)
