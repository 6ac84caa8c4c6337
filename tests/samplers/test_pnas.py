"""PNAS: stages of growing cells, each a function of the finished trials."""

import optuna
import pytest
from _helpers import NB201
from _helpers import nb201_score
from optuna.trial import TrialState

from optuna_nas import spaces
from optuna_nas.predictors import TreeEnsemble
from optuna_nas.samplers import PNASSampler
from optuna_nas.samplers import create_sampler

STAGE = "PNASSampler:stage"
SMALL_CELL = spaces.CellSpace(max_blocks=3, ops=("identity", "max_pool_3x3"))


def _size(params):
    return sum(params[name] != "none" for name in params)


def _pnas(**options):
    return PNASSampler(**{"space": NB201, "beam_size": 4, "seed": 0, **options})


def test_stage_one_holds_every_distinct_one_edge_cell_then_the_stages_grow():
    study = optuna.create_study(direction="maximize", sampler=_pnas())
    study.optimize(nb201_score, n_trials=40)
    stages = [t.system_attrs[STAGE] for t in study.trials]
    assert stages == sorted(stages) and stages[0] == 1 and max(stages) == 7  # 6 stages, then the best cells
    first = [t for t in study.trials if t.system_attrs[STAGE] == 1]
    # The 24 one-edge cells compute 5 functions: a conv, pool or skip from input to output, or nothing.
    assert len(first) == 5 and len({NB201.dedup_key(t.params) for t in first}) == 5
    # Every architecture once, up to the function it computes.
    assert len({NB201.dedup_key(t.params) for t in study.trials}) == 40
    sampler = study.sampler
    state = sampler.learned_state(study)
    for stage in range(2, 7):
        trials = [t for t in study.trials if t.system_attrs[STAGE] == stage]
        assert len(trials) <= 4
        smaller = [item for item in state if item[3] < stage]
        beam = sorted((i for i in smaller if i[3] == stage - 1), key=lambda i: (-i[2], i[0]))[:4]
        for trial in trials:  # a child of a beam cell: the cell with one edge more (two, to reach a dead node)
            assert any(all(p[name] == "none" or p[name] == trial.params[name] for name in p) for _, p, _, _ in beam)
            assert _size(trial.params) in (stage, stage + 1)


def test_the_queue_is_the_beam_children_the_predictor_ranks_best():
    study = optuna.create_study(direction="maximize", sampler=_pnas(beam_size=3))
    study.optimize(nb201_score, n_trials=8)
    sampler = study.sampler
    state = sampler.learned_state(study)
    queue = sampler._queue(study, state, 2)
    assert len(queue) == 3
    smaller = [item for item in state if item[3] < 2]
    known = {NB201.dedup_key(p) for _, p, _, _ in smaller}
    distinct = {}
    beam = sorted(smaller, key=lambda i: (-i[2], i[0]))[:3]
    for _, parent, _, _ in beam:
        for child in sampler._grown(parent):
            distinct.setdefault(NB201.dedup_key(child), child)
    candidates = [c for key, c in distinct.items() if key not in known]
    assert queue == sampler._ranked(smaller, candidates)[:3]
    # What stage 2 trained is the queue, in its order.
    assert [t.params for t in study.trials if t.system_attrs[STAGE] == 2] == queue


def test_a_fresh_sampler_on_the_storage_plans_what_the_original_would(tmp_path):
    url = f"sqlite:///{tmp_path / 'pnas.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize", sampler=_pnas())
    study.optimize(nb201_score, n_trials=17)
    trial = study.ask()
    frozen = study._storage.get_trial(trial._trial_id)
    fresh = _pnas()
    reloaded = optuna.load_study(storage=url, study_name="s", sampler=fresh)
    original = study.sampler.plan(study, frozen, study.sampler.learned_state(study), 17)
    assert fresh.plan(reloaded, frozen, fresh.learned_state(reloaded), 17) == original


def test_cells_grow_a_block_at_a_time():
    sampler = PNASSampler(space=SMALL_CELL, beam_size=3, seed=0, predictor=TreeEnsemble(n_estimators=10, seed=0))
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        spec = SMALL_CELL.suggest(trial)
        return sum(block.op_a == "max_pool_3x3" for block in spec.blocks) + 0.1 * len(spec.blocks)

    study.optimize(objective, n_trials=18)
    stages = [t.system_attrs[STAGE] for t in study.trials]
    # Inputs {0, 1} and 2 ops on each side of a sum: 4 x 4 pairs, 10 up to the order of the sum.
    assert stages[:10] == [1] * 10 and stages[10:13] == [2] * 3 and stages[13:16] == [3] * 3
    assert all(t.params["num_blocks"] == s for t, s in zip(study.trials, stages, strict=False) if s <= 3)
    assert len({SMALL_CELL.dedup_key(t.params) for t in study.trials}) == 18


def test_stage_one_can_be_a_seeded_sample():
    sampler = PNASSampler(space=SMALL_CELL, beam_size=2, stage_one=4, seed=3)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(len(SMALL_CELL.suggest(t).blocks)), n_trials=6)
    assert [t.system_attrs[STAGE] for t in study.trials] == [1, 1, 1, 1, 2, 2]
    again = optuna.create_study(
        direction="maximize", sampler=PNASSampler(space=SMALL_CELL, beam_size=2, stage_one=4, seed=3)
    )
    again.optimize(lambda t: float(len(SMALL_CELL.suggest(t).blocks)), n_trials=4)
    assert [t.params for t in again.trials] == [t.params for t in study.trials[:4]]


def test_an_objective_of_another_space_fails_its_trial_with_a_message():
    study = optuna.create_study(direction="maximize", sampler=_pnas())
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1, catch=(ValueError,))
    (trial,) = study.trials
    assert trial.state == TrialState.FAIL
    with pytest.raises(ValueError, match="the decision 'x' is not one of the space's"):
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"beam_size": 0}, "beam_size"),
        ({"beam_size": 10_001}, "beam_size"),
        ({"max_blocks": 7}, "max_blocks must be at most 6"),
        ({"max_blocks": 0}, "max_blocks"),
        ({"stage_one": 0}, "stage_one"),
        ({"predictor": "lstm"}, "predictor"),
        ({"space": spaces.ChainSpace()}, "space must be a CellSpace or a NASBench201Space"),
        ({"space": spaces.CellSpace(min_blocks=2)}, "min_blocks"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        PNASSampler(**{"space": NB201, **kwargs})


def test_the_named_sampler_needs_its_space():
    with pytest.raises(ValueError, match="needs the search space"):
        create_sampler("pnas", seed=0)
    assert create_sampler("pnas", seed=0, space=NB201, beam_size=5).beam_size == 5


def test_the_last_cells_of_a_stage_are_trained_though_the_duplicate_look_ahead_samples():
    # 5 ops: a 1-block cell has 100 completions after num_blocks, more than the base's look-ahead
    # checks, so near the end of stage 1 it may take num_blocks=1 for exhausted while a planned
    # cell remains; the planned cell is what decides (it used to end every trial failed from there on).
    space = spaces.CellSpace(
        max_blocks=2, ops=("identity", "max_pool_3x3", "avg_pool_3x3", "sep_conv_3x3", "dil_conv_3x3")
    )
    sampler = PNASSampler(space=space, beam_size=2, seed=0, predictor=TreeEnsemble(n_estimators=5, seed=0))
    n_first = len(sampler._stage_one)
    study = optuna.create_study(direction="maximize", sampler=sampler)

    def objective(trial):
        spec = space.suggest(trial)
        return sum(block.op_a == "sep_conv_3x3" for block in spec.blocks) + 0.1 * len(spec.blocks)

    study.optimize(objective, n_trials=n_first + 2, catch=(ValueError,))
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    assert [t.system_attrs[STAGE] for t in study.trials] == [1] * n_first + [2, 2]
    assert len({space.dedup_key(t.params) for t in study.trials}) == n_first + 2
