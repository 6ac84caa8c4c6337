"""The cached learned state is always what a rebuild from storage gives, at O(trials) learn calls."""

import random

import optuna
import pytest
from _helpers import NB201
from _helpers import SCORES
from _helpers import CountingEvolution
from _helpers import CountingMetaQNN
from _propose import SMALL
from optuna.trial import TrialState

from optuna_nas.samplers import AgingEvolutionSampler
from optuna_nas.samplers import RewardLedger
from optuna_nas.samplers import create_sampler
from optuna_nas.samplers._history import to_episode

SAMPLERS = ["metaqnn", "evolution"]


COUNTING = {"metaqnn": CountingMetaQNN, "evolution": CountingEvolution}


def _finish(study, trial, score, rnd):
    outcome = rnd.random()
    if outcome < 0.55:
        study.tell(trial, score)
    elif outcome < 0.7:
        trial.report(rnd.random() * 10, 1)
        study.tell(trial, state=TrialState.PRUNED)
    elif outcome < 0.8:
        study.tell(trial, state=TrialState.PRUNED)
    elif outcome < 0.9:
        study.tell(trial, state=TrialState.FAIL)
    else:
        trial.set_constraint("budget", 1.0)
        study.tell(trial, score)


@pytest.mark.parametrize("name", SAMPLERS)
@pytest.mark.parametrize("order_seed", [0, 1, 2])
def test_cached_state_equals_a_rebuild_whatever_the_finish_order(name, order_seed):
    rnd = random.Random(order_seed)
    cached = COUNTING[name](seed=3, **SMALL[name])
    study = optuna.create_study(direction="maximize", sampler=cached)
    running = []
    for step in range(240):
        if running and (len(running) >= 8 or rnd.random() < 0.5):
            trial, score = running.pop(rnd.randrange(len(running)))
            _finish(study, trial, score, rnd)
        else:
            trial = study.ask()
            try:
                spec = NB201.suggest(trial)
            except optuna.TrialPruned:  # yielded to a running trial with the same cell
                study.tell(trial, state=TrialState.PRUNED)
                continue
            running.append((trial, sum(SCORES[op] for op in spec.ops)))
        if step % 7 == 0:  # snapshots at random points of the history, as other trials would ask
            before = rnd.choice([None, rnd.randrange(len(study.trials) + 1)])
            fresh = create_sampler(name, seed=3, **SMALL[name])
            assert cached.learned_state(study, before=before) == fresh.learned_state(study, before=before)
    n_trials = len(study.trials)
    assert n_trials > 100
    assert cached.learn_calls <= 6 * n_trials


def test_a_pruned_trials_reward_does_not_depend_on_when_it_was_converted():
    """Trial 2 (pruned, rewarded as the worst so far) finishes before trial 1 (complete, low)."""
    sampler = AgingEvolutionSampler(population_size=10, sample_size=2, pruned="worst", seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    trials = [study.ask() for _ in range(3)]
    for trial in trials:
        trial.suggest_float("x", 0.0, 1.0)
    study.tell(trials[0], 0.7)
    study.tell(trials[2], state=TrialState.PRUNED)
    assert [m.reward for m in sampler.population(study)] == [0.7, 0.7]
    study.tell(trials[1], 0.1)
    # In number order the pruned trial comes after 0.1: the worst so far is 0.1.
    assert [m.reward for m in sampler.population(study)] == [0.7, 0.1, 0.1]
    fresh = AgingEvolutionSampler(population_size=10, sample_size=2, pruned="worst", seed=0)
    assert [m.reward for m in fresh.population(study)] == [0.7, 0.1, 0.1]


@pytest.mark.parametrize("name", SAMPLERS)
def test_learned_state_outside_a_trial_reads_storage_now(name, tmp_path):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    sampler = create_sampler(name, seed=0, **SMALL[name])
    mine = optuna.create_study(storage=url, study_name="s", direction="maximize", sampler=sampler)
    mine.optimize(lambda t: float(NB201.suggest(t).ops.count("nor_conv_3x3")), n_trials=5)
    before = sampler.learned_state(mine)
    other_worker = optuna.load_study(storage=url, study_name="s", sampler=optuna.samplers.RandomSampler(seed=1))
    other_worker.optimize(lambda t: float(NB201.suggest(t).ops.count("skip_connect")), n_trials=5)
    fresh = create_sampler(name, seed=0, **SMALL[name])
    after = sampler.learned_state(mine)
    assert after != before
    assert after == fresh.learned_state(mine)


def test_a_violated_trial_is_rewarded_below_every_feasible_one():
    study = optuna.create_study(direction="maximize")
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    values = [0.5, 0.9, 0.95, 0.2, 0.99, 0.3]
    violated = {2, 4}
    for number, value in enumerate(values):
        attrs = {"constraints:c": 1.0 if number in violated else -1.0}
        study.add_trial(optuna.create_trial(params={"x": value}, distributions=dist, value=value, system_attrs=attrs))
    ledger = RewardLedger("last_value")
    episodes = [ledger.settle(to_episode(t, study.directions, lambda v, d: v[0], "last_value")) for t in study.trials]
    feasible = [e.reward for e in episodes if e.number not in violated]
    assert feasible == [0.5, 0.9, 0.2, 0.3]
    for episode in episodes:
        if episode.number in violated:
            lower = [e.reward for e in episodes[: episode.number] if e.number not in violated]
            assert episode.reward < min(lower)
            assert not episode.feasible and episode.violation == 1.0


def test_evolution_never_picks_a_violating_parent_while_a_feasible_one_is_drawn():
    def objective(trial):
        spec = NB201.suggest(trial)
        convs = spec.ops.count("nor_conv_3x3")
        trial.set_constraint("convs", convs - 2.0)  # at most two 3x3 convs
        return float(convs)

    sampler = AgingEvolutionSampler(population_size=6, sample_size=6, seed=0)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=40)
    for child in study.trials[6:]:
        parent = study.trials[child.system_attrs["AgingEvolutionSampler:parent"]]
        assert all(v <= 0 for v in parent.constraints.values())
