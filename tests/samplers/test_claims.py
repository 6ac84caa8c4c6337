"""Claiming an architecture (samplers.mark_decided): who yields, who keeps it, and what is never lost."""

import pickle

import optuna
import pytest
from optuna.distributions import CategoricalDistribution
from optuna.distributions import FloatDistribution
from optuna.trial import TrialState

from optuna_nas.samplers import AgingEvolutionSampler
from optuna_nas.samplers import MetaQNNSampler
from optuna_nas.samplers import NASSampler
from optuna_nas.samplers import Plan
from optuna_nas.samplers import mark_decided
from optuna_nas.samplers import rewards

A = {"a": CategoricalDistribution(["x", "y", "z"])}


def _study():
    return optuna.create_study(direction="maximize", sampler=AgingEvolutionSampler(population_size=2, seed=0))


def _waiting_with(study, params):
    """A trial that starts with ``params`` without being enqueued as fixed (as Optuna's retry
    callback makes them)."""
    study.add_trial(optuna.trial.create_trial(state=TrialState.WAITING, params=params, distributions=A))
    trial = study.ask()
    assert trial.params == params
    return trial


def test_a_failed_trial_does_not_hold_its_architecture():
    study = _study()
    first = study.ask()
    first.suggest_categorical("a", ["x", "y", "z"])
    mark_decided(first)
    study.tell(first, state=TrialState.FAIL)
    retry = _waiting_with(study, {"a": first.params["a"]})
    mark_decided(retry)  # the retry trains: nothing else evaluated this architecture
    assert retry.storage.get_trial(retry._trial_id).system_attrs["optuna_nas:decided"] == "cleared"


@pytest.mark.parametrize("learning_rate_first", [False, True])
def test_the_claim_covers_the_architecture_whatever_the_rival_decided_since(learning_rate_first):
    study = _study()
    holder = study.ask()
    choice = holder.suggest_categorical("a", ["x", "y", "z"])
    mark_decided(holder)
    if learning_rate_first:
        holder.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    rival = _waiting_with(study, {"a": choice})
    with pytest.raises(optuna.TrialPruned, match=f"trial {holder.number}"):
        mark_decided(rival)
    study.tell(rival, state=TrialState.PRUNED)
    assert study.trials[rival.number].system_attrs["optuna_nas:duplicate_of"] == holder.number


def test_a_finished_trial_with_other_later_params_does_not_hold_the_architecture():
    study = _study()
    done = study.ask()
    choice = done.suggest_categorical("a", ["x", "y", "z"])
    mark_decided(done)
    done.suggest_float("learning_rate", 1e-4, 1e-1, log=True)
    study.tell(done, 1.0)
    again = _waiting_with(study, {"a": choice})
    mark_decided(again)  # the same cell with another learning rate is another experiment


def test_a_pending_architecture_is_pending_for_every_reader():
    sampler = AgingEvolutionSampler(population_size=2, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    holder = study.ask()
    choice = holder.suggest_categorical("a", ["x", "y", "z"])
    mark_decided(holder)  # reads storage as the holder
    assert sampler.is_evaluated(study, {"a": choice})
    other = study.ask()  # reads storage as another trial
    assert sampler.is_evaluated(study, {"a": choice})
    study.tell(other, state=TrialState.FAIL)


def test_a_reward_function_that_raises_fails_a_trial_and_loses_nothing():
    calls = {"raise": False}

    def flaky(values, directions):
        if calls["raise"]:
            raise RuntimeError("reward service down")
        return values[0]

    def objective(t):
        return float(["x", "y", "z"].index(t.suggest_categorical("a", ["x", "y", "z"]))) + t.number

    sampler = MetaQNNSampler(seed=0, reward=flaky, epsilon_schedule=((1.0, 2), (0.1, 1)))
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(lambda t: (objective(t), 1.0), n_trials=2)
    calls["raise"] = True
    study.optimize(lambda t: (objective(t), 1.0), n_trials=1, catch=(RuntimeError,))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAIL]
    calls["raise"] = False
    fresh = MetaQNNSampler(seed=0, reward=flaky, epsilon_schedule=((1.0, 2), (0.1, 1)))
    assert sampler.learned_state(study) == fresh.learned_state(study)
    assert len(sampler.learned_state(study)["memory"]) == 2


def test_stepped_float_values_are_written_as_a_user_would():
    from optuna_nas.samplers import ActionSpace

    actions = ActionSpace(FloatDistribution(0.0, 1.0, step=0.1), 20)
    assert actions.values()[3] == 0.3 and actions.values()[7] == 0.7


def test_samplers_with_reward_functions_pickle():
    directions = [optuna.study.StudyDirection.MAXIMIZE] + 2 * [optuna.study.StudyDirection.MINIMIZE]
    for reward in (rewards.linear([1.0, 0.1, 0.01]), rewards.mnas(100.0)):
        sampler = MetaQNNSampler(seed=0, reward=reward)
        clone = pickle.loads(pickle.dumps(sampler))
        values = [0.9, 200.0, 200.0]
        assert clone.reward_function(None)(values, directions) == reward(values, directions)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: MetaQNNSampler(avoid_duplicates="no"), "avoid_duplicates.*no"),
        (lambda: MetaQNNSampler(epsilon_schedule=[(0.5, 2.7)]), "epsilon_schedule"),
        (lambda: MetaQNNSampler(epsilon_schedule=[(True, 1)]), "epsilon_schedule"),
        (lambda: rewards.mnas(1.0, cost_index="a"), "cost_index.*a"),
        (lambda: rewards.mnas(1.0, cost_index=0), "cost_index and accuracy_index"),
        (lambda: rewards.linear("ab"), "weights"),
    ],
)
def test_bad_arguments(make, match):
    with pytest.raises(ValueError, match=match):
        make()


class _FixedPlan(NASSampler):
    """Plans the same child for every trial."""

    def plan(self, study, trial, state, n_finished):
        return Plan(params={"a": "x", "b": 1}, attrs={"parent": 0})

    def propose(self, decision):
        return decision.random_action()


def test_a_decision_whose_planned_child_another_worker_took_is_recorded():
    study = optuna.create_study(direction="maximize", sampler=_FixedPlan(seed=0))
    holder = study.ask()  # takes the planned child, and holds it while it runs
    holder.suggest_categorical("a", ["x", "y"])
    holder.suggest_categorical("b", [1, 2])
    mark_decided(holder)
    assert holder.params == {"a": "x", "b": 1}
    follower = study.ask()
    follower.suggest_categorical("a", ["x", "y"])
    assert follower.suggest_categorical("b", [1, 2]) == 2  # the planned 1 is pending elsewhere
    attrs = study._storage.get_trial(follower._trial_id).system_attrs
    assert attrs["_FixedPlan:parent"] == 0 and attrs["_FixedPlan:unplanned"] == ["b"]
    assert "_FixedPlan:unplanned" not in study._storage.get_trial(holder._trial_id).system_attrs
