"""The REINFORCE controller: it learns, it is the same in every process, and it follows the policy it learned."""

import hashlib
import json
import math
import os
import subprocess
import sys

import optuna
import pytest
import torch
from _helpers import nb201_score
from optuna.distributions import CategoricalDistribution
from optuna.distributions import IntDistribution
from optuna.testing.pytest_samplers import BasicSamplerTestCase
from optuna.testing.pytest_samplers import MultiObjectiveSamplerTestCase

from optuna_nas import objectives
from optuna_nas import spaces
from optuna_nas.samplers import ENASSampler
from optuna_nas.samplers import ReinforceSampler
from optuna_nas.samplers import controllers
from optuna_nas.samplers import rewards

HERE = os.path.dirname(os.path.abspath(__file__))


class TestReinforceSharedSuite(BasicSamplerTestCase, MultiObjectiveSamplerTestCase):
    @pytest.fixture
    def sampler(self):
        return lambda: ReinforceSampler(seed=0, replay=2, hidden_size=8)


BEST = ["c", "a", "d", "b"]
CHOICES = ["a", "b", "c", "d"]


def _matches(trial):
    return sum(trial.suggest_categorical(f"x{i}", CHOICES) == best for i, best in enumerate(BEST)) / len(BEST)


def test_the_controller_learns_the_best_sequence():
    # One choice per decision is best; without the probability floor (which caps each step at
    # (1 + 0.05) / (1 + 4 * 0.05) = 0.875) the policy can become sure of it. With the other settings
    # at their defaults, the best sequence's probability passes 0.9 within 150 trials (125 on
    # seeds 0, 1 and 2).
    sampler = ReinforceSampler(seed=0, probability_floor=0.0, avoid_duplicates=False)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    distributions = {f"x{i}": CategoricalDistribution(CHOICES) for i in range(len(BEST))}
    best = {f"x{i}": choice for i, choice in enumerate(BEST)}
    before = sampler.sequence_probability(study, best, distributions)
    study.optimize(_matches, n_trials=150)
    after = sampler.sequence_probability(study, best, distributions)
    assert before < 0.01 < 0.9 < after
    assert sum(t.value for t in study.trials[-20:]) > sum(t.value for t in study.trials[:20])


def test_what_it_proposes_follows_the_learned_policy():
    # Trials asked and not yet told leave the learned state as it is: their first decisions are
    # draws from one distribution, which must be the policy's.
    sampler = ReinforceSampler(seed=1, probability_floor=0.0, avoid_duplicates=False)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_matches, n_trials=48)
    state = sampler.learned_state(study)
    probabilities = sampler.policy.probabilities(state["parameters"], [], controllers.decision_key("x0", len(CHOICES)))
    assert probabilities.max() > 0.4  # it learned something to compare against
    draws = [study.ask({"x0": CategoricalDistribution(CHOICES)}).params["x0"] for _ in range(400)]
    for choice, p in zip(CHOICES, probabilities, strict=True):
        assert abs(draws.count(choice) / 400 - p) < 0.08


def test_floor_keeps_every_action_reachable():
    sampler = ReinforceSampler(seed=0, learning_rate=0.05, probability_floor=0.05, avoid_duplicates=False)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_matches, n_trials=60)
    state = sampler.learned_state(study)
    p = sampler.policy.probabilities(state["parameters"], [], controllers.decision_key("x0", 4))
    assert p.min() >= 0.05 / (1 + 4 * 0.05) - 1e-12
    assert abs(p.sum() - 1) < 1e-12


def _weights_digest(state):
    digest = hashlib.sha256()
    for name in sorted(state["parameters"]):
        digest.update(name.encode())
        digest.update(state["parameters"][name].numpy().tobytes())
    return digest.hexdigest()


def test_replayed_weights_are_bit_identical_in_other_processes(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(
        storage=storage, study_name="s", direction="maximize", sampler=ReinforceSampler(seed=3, hidden_size=8)
    )
    study.optimize(nb201_score, n_trials=30)
    here = _weights_digest(study.sampler.learned_state(study))
    fresh = ReinforceSampler(seed=3, hidden_size=8)
    assert _weights_digest(fresh.learned_state(study)) == here
    script = (
        "import sys, torch, optuna, hashlib; torch.set_num_threads(int(sys.argv[2]));"
        "from optuna_nas.samplers import ReinforceSampler;"
        "study = optuna.load_study(storage=sys.argv[1], study_name='s');"
        "state = ReinforceSampler(seed=3, hidden_size=8).learned_state(study);"
        "d = hashlib.sha256();"
        "weights = state['parameters'];"
        "[(d.update(n.encode()), d.update(weights[n].numpy().tobytes())) for n in sorted(weights)];"
        "print(d.hexdigest())"
    )
    for threads in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", script, storage, threads],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": threads},
        )
        assert out.stdout.strip() == here


def test_variable_length_architectures_and_wide_ranges():
    space = spaces.ChainSpace(max_layers=4, input_size=8)
    sampler = ReinforceSampler(seed=0, hidden_size=8, replay=2, dedup_key=space.dedup_key)

    def objective(trial):
        spec = space.suggest(trial)
        width = trial.suggest_int("width", 1, 1000)  # wide: bucketed into bins
        return len(spec.layers) / 10 + width / 1e4

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(objective, n_trials=25)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    lengths = {len(spaces.ChainSpec.from_dict(space.spec_from_params(t.params).to_dict()).layers) for t in study.trials}
    assert len(lengths) > 1
    state = sampler.learned_state(study)
    width_key = controllers.decision_key("width", sampler.actions(IntDistribution(1, 1000)).size)
    assert f"head/{width_key}/weight" in state["parameters"]


def test_the_seeds_multi_objective_reward_is_rewards_linear():
    objective = objectives.NASBench201(objectives.DEFAULT_TABLE, "cifar10", multi_objective=True)
    reward = rewards.linear([1.0, 1e-8, 1e-10])  # accuracy - 1e-8 params - 1e-10 FLOPs
    sampler = ReinforceSampler(seed=0, reward=reward)
    study = optuna.create_study(directions=objective.directions, sampler=sampler)
    study.optimize(objective, n_trials=10)
    learned = [r for _, r in sampler.learned_state(study)["memory"]]
    expected = [t.values[0] - 1e-8 * t.values[1] - 1e-10 * t.values[2] for t in study.trials]
    assert learned == pytest.approx(expected)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"learning_rate": 0}, "learning_rate"),
        ({"batch_size": 0}, "batch_size"),
        ({"baseline_decay": 1.0}, "baseline_decay"),
        ({"entropy_weight": -1}, "entropy_weight"),
        ({"probability_floor": -0.1}, "probability_floor"),
        ({"replay": -1}, "replay"),
        ({"replay": 10**9}, "replay"),
        ({"self_imitation": -1}, "self_imitation"),
        ({"self_imitation": 10**9}, "self_imitation"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"temperature": 0}, "temperature"),
        ({"tanh_constant": -1}, "tanh_constant"),
    ],
)
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReinforceSampler(**kwargs)


def test_self_imitation_pulls_the_controller_towards_the_best_architectures_seen():
    """The same history, learned with and without the extra step on the 4 best architectures."""
    study = optuna.create_study(direction="maximize", sampler=ReinforceSampler(seed=0, self_imitation=0))
    study.optimize(_matches, n_trials=24)
    distributions = {f"x{i}": CategoricalDistribution(CHOICES) for i in range(len(BEST))}
    best = sorted(study.trials, key=lambda t: -t.value)[:4]
    worst = sorted(study.trials, key=lambda t: t.value)[:4]
    imitating, plain = ReinforceSampler(seed=0, self_imitation=4), ReinforceSampler(seed=0, self_imitation=0)

    def mean_log_probability(sampler, trials):
        return sum(math.log(sampler.sequence_probability(study, t.params, distributions)) for t in trials) / 4

    gain_best = mean_log_probability(imitating, best) - mean_log_probability(plain, best)
    gain_worst = mean_log_probability(imitating, worst) - mean_log_probability(plain, worst)
    assert gain_best > 0 and gain_best > gain_worst
    # A step on the 4 best, after each of the 3 batch steps: three steps more, no more.
    assert imitating.learned_state(study)["moments"]["start"][2] == 6
    assert plain.learned_state(study)["moments"]["start"][2] == 3


def test_enas_settings():
    sampler = ENASSampler(seed=0)
    assert sampler.policy.tanh_constant == 2.5 and sampler.policy.temperature == 5.0
    assert sampler.policy.hidden_size == 64 and sampler.policy.probability_floor == 0.0


def test_importing_the_samplers_does_not_import_torch():
    code = "import sys, optuna_nas.samplers; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_state_copies_do_not_share_changes():
    sampler = ReinforceSampler(seed=0, hidden_size=4)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=6)
    state = sampler.learned_state(study)
    before = json.dumps({k: v.tolist() for k, v in state["parameters"].items()})
    copy = sampler.copy_state(state)
    sampler._step(copy, [(tuple(sampler.steps_of(study.trials[0].params, study.trials[0].distributions)), 1.0)])
    assert json.dumps({k: v.tolist() for k, v in state["parameters"].items()}) == before
    assert not torch.equal(copy["parameters"]["start"], state["parameters"]["start"])


@pytest.mark.parametrize("advantage", ["baseline", "rank"])
def test_replay_before_the_first_full_batch_learns(advantage):
    sampler = ReinforceSampler(seed=0, batch_size=3, replay=1, advantage=advantage, hidden_size=8)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(nb201_score, n_trials=8)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    state = sampler.learned_state(study)
    assert state["moments"] and state["baseline"] is not None


def test_a_learning_rate_far_too_large_never_makes_the_weights_non_finite():
    sampler = ReinforceSampler(seed=0, batch_size=1, probability_floor=0.0, learning_rate=1e300, hidden_size=8)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_matches, n_trials=30)
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    parameters = sampler.learned_state(study)["parameters"]
    assert all(bool(torch.isfinite(value).all()) for value in parameters.values())


def test_a_trials_decisions_cost_one_lstm_step_each():
    # Proposing reuses the LSTM state of the trial's earlier decisions: with 120 decisions a trial
    # takes 120 steps, and the proposals equal those of a policy run from the start each time.
    sampler = ReinforceSampler(seed=0, hidden_size=8)
    calls = []
    original = sampler.policy._cell

    def counting(parameters, carry):
        calls.append(1)
        return original(parameters, carry)

    sampler.policy._cell = counting

    def long_objective(trial):
        return sum(trial.suggest_int(f"d{i}", 0, 2) for i in range(120)) / 240

    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(long_objective, n_trials=1)
    assert len(calls) == 120
    state = sampler.learned_state(study)
    trial = study.trials[0]
    steps = sampler.steps_of(trial.params, trial.distributions)
    fresh = ReinforceSampler(seed=0, hidden_size=8).policy
    for index in (0, 57, 119):
        assert (
            fresh.probabilities(state["parameters"], steps[:index], steps[index][0]).tolist()
            == sampler.policy.probabilities(state["parameters"], steps[:index], steps[index][0]).tolist()
        )


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"hidden_size": 10**6}, "hidden_size"),
        ({"batch_size": 10**9}, "batch_size"),
        ({"float_bins": 10**9}, "float_bins"),
    ],
)
def test_sizes_that_would_exhaust_memory_or_never_learn_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ReinforceSampler(**kwargs)
