import optuna
import pytest
from _helpers import nb201_score
from _helpers import nb201_two_objectives
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase

from optuna_nas.samplers import AgingEvolutionSampler


class TestAgingEvolutionSharedSuite(BasicSamplerTestCase, MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: AgingEvolutionSampler(population_size=2, sample_size=2, seed=0)


class TestParetoSelectionSharedSuite(MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: AgingEvolutionSampler(population_size=2, sample_size=2, selection="pareto", seed=0)


def test_child_is_its_parent_with_one_decision_changed_and_new():
    sampler = AgingEvolutionSampler(population_size=5, sample_size=3, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=60)
    children = study.trials[5:]
    assert all("AgingEvolutionSampler:parent" in t.system_attrs for t in children)
    for child in children:
        parent = study.trials[child.system_attrs["AgingEvolutionSampler:parent"]]
        mutation = child.system_attrs["AgingEvolutionSampler:mutation"]
        assert parent.number < child.number
        assert {k for k in child.params if child.params[k] != parent.params[k]} == {mutation}
        assert "AgingEvolutionSampler:unplanned" not in child.system_attrs  # one worker: plans hold
    assert len({tuple(t.params.values()) for t in study.trials}) == 60


def test_first_population_is_random_and_parents_come_from_the_last_p():
    sampler = AgingEvolutionSampler(population_size=6, sample_size=6, seed=2)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=20)
    assert not any("AgingEvolutionSampler:parent" in t.system_attrs for t in study.trials[:6])
    for child in study.trials[6:]:
        assert child.number - 6 <= child.system_attrs["AgingEvolutionSampler:parent"] < child.number


def test_tournament_picks_the_best_of_the_sample():
    sampler = AgingEvolutionSampler(population_size=8, sample_size=50, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=9)
    best_of_population = max(study.trials[:8], key=lambda t: t.value).number
    assert study.trials[8].system_attrs["AgingEvolutionSampler:parent"] == best_of_population


def test_evolution_improves_on_its_random_start():
    sampler = AgingEvolutionSampler(population_size=10, sample_size=4, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=60)
    assert max(t.value for t in study.trials[30:]) > max(t.value for t in study.trials[:10])


def test_pareto_selection_in_multi_objective_studies():
    sampler = AgingEvolutionSampler(population_size=4, sample_size=4, selection="pareto", seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(nb201_two_objectives, n_trials=12)
    front = {
        t.number
        for t in study.trials[:4]
        if not any(
            o.values[0] >= t.values[0] and o.values[1] <= t.values[1] and o.values != t.values for o in study.trials[:4]
        )
    }
    assert study.trials[4].system_attrs["AgingEvolutionSampler:parent"] in front


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"population_size": 0}, "population_size"),
        ({"sample_size": 0}, "sample_size"),
        ({"selection": "best"}, "selection"),
        ({"seed": 1.5}, "seed"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        AgingEvolutionSampler(**kwargs)


def test_none_is_a_choice_like_any_other():
    def objective(trial):
        a = trial.suggest_categorical("a", [None, "x", "y"])
        b = trial.suggest_categorical("b", [None, 1, 2, 3])
        return (a is None) + (b or 0)

    sampler = AgingEvolutionSampler(population_size=3, sample_size=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=12)
    assert len({(t.params["a"], t.params["b"]) for t in study.trials}) == 12
    assert any(t.params["a"] is None for t in study.trials[3:])
    for child in study.trials[3:]:
        parent = study.trials[child.system_attrs["AgingEvolutionSampler:parent"]]
        mutation = child.system_attrs["AgingEvolutionSampler:mutation"]
        assert child.params[mutation] != parent.params[mutation]


def test_enqueued_trials_carry_no_lineage():
    sampler = AgingEvolutionSampler(population_size=4, sample_size=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=8)
    study.enqueue_trial(dict(study.trials[0].params))
    study.optimize(nb201_score, n_trials=2)
    enqueued, planned = study.trials[8], study.trials[9]
    assert enqueued.params == study.trials[0].params
    assert "AgingEvolutionSampler:parent" not in enqueued.system_attrs
    assert "AgingEvolutionSampler:parent" in planned.system_attrs
