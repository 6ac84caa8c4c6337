"""Several objectives: by default our samplers trade them off, with rewards settled in number order."""

import dataclasses
import random

import numpy as np
import optuna
import pytest
from _helpers import NB201
from _helpers import SCORES
from _helpers import CountingEvolution
from _helpers import CountingMetaQNN
from _propose import SMALL
from optuna.study import StudyDirection
from optuna.trial import TrialState

from optuna_nas.samplers import AgingEvolutionSampler
from optuna_nas.samplers import MetaQNNSampler
from optuna_nas.samplers import RewardLedger
from optuna_nas.samplers import create_sampler
from optuna_nas.samplers import rewards
from optuna_nas.samplers._history import episodes
from optuna_nas.samplers._history import to_episode

UP, DOWN = StudyDirection.MAXIMIZE, StudyDirection.MINIMIZE
COUNTING = {"metaqnn": CountingMetaQNN, "evolution": CountingEvolution}


def _dominated_share(values, earlier):
    """Reference by hand: the share of earlier (accuracy up, cost down) points dominating ``values``."""
    if not earlier:
        return 0.0
    a, c = values
    count = sum(1 for ea, ec in earlier if ea >= a and ec <= c and (ea > a or ec < c))
    return count / len(earlier)


def test_dominance_reward_matches_a_hand_count():
    rnd = random.Random(0)
    points = [(rnd.randint(0, 5) / 5, float(rnd.randint(0, 5))) for _ in range(40)]
    for weight in (0.0, 0.5, 1.0):
        reward = rewards.dominance(primary_weight=weight)
        for k, point in enumerate(points):
            earlier = points[:k]
            beaten = sum(1 for ea, _ in earlier if ea <= point[0]) / len(earlier) if earlier else 1.0
            expected = (1 - weight) * (1 - _dominated_share(point, earlier)) + weight * beaten
            got = reward.relative_to(point, [UP, DOWN], np.array(earlier).reshape(-1, 2))
            assert got == pytest.approx(expected)
    # The two ends of a front both earn the top of the dominance part.
    front = np.array([[0.9, 100.0], [0.5, 1.0]])
    assert rewards.dominance(primary_weight=0.0).relative_to([0.95, 200.0], [UP, DOWN], front) == 1.0
    assert rewards.dominance(primary_weight=0.0).relative_to([0.1, 0.5], [UP, DOWN], front) == 1.0


@pytest.mark.parametrize("weight", [-0.1, 1.5, float("nan"), "0.5", True])
def test_dominance_rejects_a_weight_outside_0_1(weight):
    with pytest.raises(ValueError, match="primary_weight"):
        rewards.dominance(primary_weight=weight)


def test_the_ledger_settles_relative_rewards_against_earlier_feasible_complete_trials_only():
    study = optuna.create_study(directions=["maximize", "minimize"])
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    rows = [((0.5, 5.0), "ok"), ((0.9, 1.0), "violates"), ((0.4, 6.0), "ok"), ((0.45, 5.5), "fail"), ((0.3, 7.0), "ok")]
    for values, kind in rows:
        attrs = {"constraints:c": 1.0 if kind == "violates" else -1.0}
        state = TrialState.FAIL if kind == "fail" else TrialState.COMPLETE
        study.add_trial(
            optuna.create_trial(
                params={"x": 0.5},
                distributions=dist,
                values=None if kind == "fail" else list(values),
                state=state,
                system_attrs=attrs,
            )
        )
    settled = episodes(study.trials, study.directions, rewards.dominance(primary_weight=0.0), "last_value")
    assert settled[0].reward == 1.0  # nothing before it
    # The violating trial 1 would dominate everything, but only feasible trials count as "earlier":
    # trial 2 is dominated by trial 0 alone, trial 4 by trials 0 and 2.
    assert settled[2].reward == 0.0
    assert settled[4].reward == 0.0
    assert settled[3].reward is None  # failed
    assert settled[1].reward < settled[0].reward  # below every feasible reward so far


def test_a_copied_ledger_settles_independently():
    directions = [UP, DOWN]
    ledger = RewardLedger("last_value", relative=rewards.dominance(primary_weight=0.0), directions=directions)
    study = optuna.create_study(directions=["maximize", "minimize"])
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for values in [(0.9, 1.0), (0.5, 5.0)]:
        study.add_trial(optuna.create_trial(params={"x": 0.5}, distributions=dist, values=list(values)))
    first, second = (to_episode(t, directions, rewards.dominance(), "last_value") for t in study.trials)
    ledger.settle(first)
    copy = ledger.copy()
    copy.settle(second)
    probe = dataclasses.replace(second, number=2, values=(0.6, 4.0))  # dominated by the first only
    assert copy.settle(probe).reward == 0.5
    assert ledger.settle(probe).reward == 0.0  # the original never saw the second


def test_samplers_trade_objectives_off_by_default_and_say_so():
    two = optuna.create_study(directions=["maximize", "minimize"])
    one = optuna.create_study(direction="maximize")
    evolution = AgingEvolutionSampler(seed=0)
    assert evolution.selection(two) == "pareto" and evolution.selection(one) == "reward"
    assert AgingEvolutionSampler(seed=0, reward=rewards.first_objective).selection(two) == "reward"
    assert AgingEvolutionSampler(seed=0, selection="reward").selection(two) == "reward"
    metaqnn = MetaQNNSampler(seed=0)
    assert isinstance(metaqnn.reward_function(two), rewards.RelativeReward)
    assert metaqnn.reward_function(one) is rewards.first_objective
    assert MetaQNNSampler(seed=0, reward=rewards.first_objective).reward_function(two) is rewards.first_objective


@pytest.mark.parametrize("share", [-0.5, 2, "half", None])
def test_primary_share_is_checked(share):
    with pytest.raises(ValueError, match="primary_share"):
        AgingEvolutionSampler(primary_share=share)


def test_pareto_selection_gives_children_to_both_ends_of_the_front():
    """On a two-objective stand-in (score up, convs down), parents include both costly and cheap
    cells."""

    def objective(trial):
        spec = NB201.suggest(trial)
        return sum(SCORES[op] for op in spec.ops), float(sum(op.startswith("nor_conv") for op in spec.ops))

    sampler = AgingEvolutionSampler(population_size=8, sample_size=4, seed=0)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=80)
    parents = [study.trials[t.system_attrs["AgingEvolutionSampler:parent"]] for t in study.trials[8:]]
    costs = {p.values[1] for p in parents}
    assert min(costs) <= 1.0 and max(costs) >= 4.0


@pytest.mark.parametrize("name", ["metaqnn", "evolution"])
@pytest.mark.parametrize("order_seed", [0, 1])
def test_relative_rewards_cached_state_equals_a_rebuild_whatever_the_finish_order(name, order_seed):
    rnd = random.Random(order_seed)
    cached = COUNTING[name](seed=3, **SMALL[name])
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=cached)
    running = []
    for step in range(200):
        if running and (len(running) >= 8 or rnd.random() < 0.5):
            trial, values = running.pop(rnd.randrange(len(running)))
            outcome = rnd.random()
            if outcome < 0.7:
                study.tell(trial, values)
            elif outcome < 0.8:
                study.tell(trial, state=TrialState.PRUNED)
            elif outcome < 0.9:
                study.tell(trial, state=TrialState.FAIL)
            else:
                trial.set_constraint("budget", 1.0)
                study.tell(trial, values)
        else:
            trial = study.ask()
            try:
                spec = NB201.suggest(trial)
            except optuna.TrialPruned:
                study.tell(trial, state=TrialState.PRUNED)
                continue
            convs = float(sum(op.startswith("nor_conv") for op in spec.ops))
            running.append((trial, (sum(SCORES[op] for op in spec.ops), convs)))
        if step % 7 == 0:
            before = rnd.choice([None, rnd.randrange(len(study.trials) + 1)])
            fresh = create_sampler(name, seed=3, **SMALL[name])
            assert cached.learned_state(study, before=before) == fresh.learned_state(study, before=before)
    assert len(study.trials) > 80
    assert cached.learn_calls <= 6 * len(study.trials)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("first", "first_objective"),
        ("dominance", "rewards.dominance(primary_weight=0.5)"),
        ("linear:1,0.5,2", "rewards.linear([1.0, 0.5, 2.0])"),
        ("mnas:3e8", "rewards.mnas(300000000.0"),
    ],
)
def test_rewards_from_their_command_line_form(text, expected):
    reward = rewards.from_string(text)
    assert expected in (getattr(reward, "__name__", "") or repr(reward)) or repr(reward).startswith(expected)


@pytest.mark.parametrize(
    "text", ["", "best", "linear", "linear:a,b", "linear:-1,1", "mnas:0", "mnas:x", "first:1", "first:", "dominance:"]
)
def test_a_bad_reward_string_is_an_error_naming_it(text):
    with pytest.raises(ValueError, match="reward"):
        rewards.from_string(text)


def _area_2d(points, reference):
    """Dominated area of minimised 2-D points up to ``reference``, by hand."""
    area, best_y = 0.0, reference[1]
    for x, y in sorted(points):
        if y < best_y:
            area += (reference[0] - x) * (best_y - y)
            best_y = y
    return area


def test_hypervolume_contributions_match_a_hand_computation():
    from optuna_nas.samplers._evolution import _hypervolume_contributions

    rnd = random.Random(1)
    for _ in range(20):
        xs = sorted(rnd.sample(range(100), 6))
        ys = sorted(rnd.sample(range(100), 6), reverse=True)
        losses = np.array([[x, y] for x, y in zip(xs, ys, strict=True)] + [[99.0, 99.0]], dtype=float)
        front = list(range(6))  # the last row is dominated: it only sets the scale
        low, high = losses.min(axis=0), losses.max(axis=0)
        scaled = [tuple((losses[i] - low) / (high - low)) for i in front]
        whole = _area_2d(scaled, (1.1, 1.1))
        expected = [whole - _area_2d(scaled[:i] + scaled[i + 1 :], (1.1, 1.1)) for i in front]
        assert _hypervolume_contributions(losses, front) == pytest.approx(expected)


def test_pareto_selection_picks_the_most_accurate_or_the_largest_contribution():
    """Contenders (accuracy up, cost down): the front's widest gap is next to the cheap end, so the
    non-accuracy tournaments go to the cheapest member."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    sampler = AgingEvolutionSampler(seed=0)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    values = [(0.95, 100.0), (0.94, 90.0), (0.93, 85.0), (0.5, 1.0), (0.2, 50.0)]
    contenders = [
        to_episode(
            optuna.create_trial(params={"x": 0.5}, distributions=dist, values=list(v)),
            study.directions,
            rewards.first_objective,
            "last_value",
        )
        for v in values
    ]
    picked = [sampler._select(study, contenders, np.random.default_rng(seed)).values for seed in range(200)]
    counts = {v: picked.count(v) for v in values}
    assert counts[(0.2, 50.0)] == 0  # dominated
    assert counts[(0.95, 100.0)] + counts[(0.5, 1.0)] == 200
    assert 70 < counts[(0.5, 1.0)] < 130


def test_pareto_selection_counts_a_member_drawn_twice_once_and_ignores_infinite_values():
    study = optuna.create_study(directions=["maximize", "minimize"])
    sampler = AgingEvolutionSampler(seed=0, primary_share=0.0)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}

    def member(number, values):
        trial = optuna.create_trial(params={"x": 0.5}, distributions=dist, values=list(values))
        episode = to_episode(trial, study.directions, rewards.first_objective, "last_value")
        return dataclasses.replace(episode, number=number)

    a, b, c = member(0, (0.5, 1.0)), member(1, (0.95, 100.0)), member(2, (0.94, 90.0))
    once = {sampler._select(study, [a, b, c], np.random.default_rng(s)).number for s in range(50)}
    twice = {sampler._select(study, [a, b, c, c], np.random.default_rng(s)).number for s in range(50)}
    assert once == twice
    infinite = member(3, (0.99, float("inf")))
    picked = {sampler._select(study, [a, b, infinite], np.random.default_rng(s)).number for s in range(50)}
    assert 3 not in picked


def test_ties_in_the_first_objective_go_to_the_undominated_member():
    study = optuna.create_study(directions=["maximize", "minimize"])
    sampler = AgingEvolutionSampler(seed=0, primary_share=1.0)
    dist = {"x": optuna.distributions.FloatDistribution(0, 1)}
    costly, cheap = (
        to_episode(
            optuna.create_trial(params={"x": 0.5}, distributions=dist, values=list(v)),
            study.directions,
            rewards.first_objective,
            "last_value",
        )
        for v in [(0.9, 100.0), (0.9, 10.0)]
    )
    assert sampler._select(study, [costly, cheap], np.random.default_rng(0)).values == (0.9, 10.0)


@pytest.mark.parametrize("maker", [rewards.dominance, rewards.linear, rewards.mnas])
def test_a_reward_maker_passed_uncalled_is_an_error(maker):
    with pytest.raises(ValueError, match="call it"):
        MetaQNNSampler(reward=maker)


def test_the_ledger_checks_its_arguments():
    with pytest.raises(ValueError, match="pruned"):
        RewardLedger("bogus")
    with pytest.raises(ValueError, match="directions"):
        RewardLedger("last_value", relative=rewards.dominance())
    assert RewardLedger("skip", 0.0, 1.0).lowest == 0.0
    assert RewardLedger("skip") == RewardLedger("skip")
