import itertools
import json
import random

import optuna
import pytest
import torch
from _search_args import TINY_SEARCH

from optuna_nas import models
from optuna_nas import spaces
from optuna_nas.cli import main
from optuna_nas.samplers import AgingEvolutionSampler
from optuna_nas.samplers import MetaQNNSampler
from optuna_nas.spaces import DAGCellSpace
from optuna_nas.spaces import DAGCellSpec

C3, C1, MP = "conv3x3-bn-relu", "conv1x1-bn-relu", "maxpool3x3"

# The Inception-like cell of nasbench's README (its 5x5 conv replaced by two 3x3 convs).
INCEPTION = [
    [0, 1, 1, 1, 0, 1, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 1, 0, 0],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 1],
    [0, 0, 0, 0, 0, 0, 0],
]


def _spec(matrix, *inner, **skeleton):
    return DAGCellSpec(matrix=matrix, ops=("input", *inner, "output"), **skeleton)


def _renumbered(spec, order):
    """The same cell with vertex ``order[k]`` as vertex ``k`` (``order`` must keep edges pointing forward)."""
    matrix = [[spec.matrix[a][b] for b in order] for a in order]
    return DAGCellSpec(matrix=matrix, ops=[spec.ops[v] for v in order])


# -- The hash: equal up to isomorphism, and only then -------------------------------------------


def test_the_readme_cell_hashes_to_its_nasbench_key():
    # The key NAS-Bench-101's data files this cell under (nasbench's hash_spec of it).
    spec = _spec(INCEPTION, C1, C3, C3, C3, MP)
    assert spec.module_hash == "28cfc7874f6d200472e1a9dcd8650aa0"


@pytest.mark.parametrize(
    "order",
    [
        (0, 5, 3, 4, 2, 1, 6),  # the branches in another order, the 3x3 pair kept in sequence
        (0, 2, 1, 5, 3, 4, 6),
        (0, 3, 5, 4, 1, 2, 6),
    ],
)
def test_the_inception_cell_with_its_inner_nodes_renumbered_has_one_hash(order):
    spec = _spec(INCEPTION, C1, C3, C3, C3, MP)
    other = _renumbered(spec, order)
    assert other.matrix != spec.matrix
    assert other.module_hash == spec.module_hash and other.spec_hash == spec.spec_hash


def test_random_cells_renumbered_in_any_topological_order_keep_their_hash():
    rng = random.Random(0)
    space = DAGCellSpace()
    for _ in range(40):
        spec = space.spec_from_params(_random_params(space, rng))
        n = spec.num_vertices
        inner = list(range(1, n - 1))
        rng.shuffle(inner)
        # Any order that keeps every edge pointing forward: repeatedly take a vertex whose inputs are placed.
        order, placed = [0], {0}
        while len(order) < n - 1:
            v = next(v for v in inner if v not in placed and all(u in placed for u in range(v) if spec.matrix[u][v]))
            order.append(v)
            placed.add(v)
        order.append(n - 1)
        assert _renumbered(spec, order).module_hash == spec.module_hash


@pytest.mark.parametrize(
    ("first", "second"),
    [
        # A chain conv3x3 -> conv1x1 is not conv1x1 -> conv3x3.
        (_spec([[0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], C3, C1), (C1, C3)),
        # With the input also feeding the output (the hash must follow edge directions).
        (_spec([[0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], C3, C1), (C1, C3)),
        # A longer chain: only the position of the 1x1 conv differs (the hash must include each node itself).
        (
            _spec([[0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], C1, C3, C3),
            (C3, C3, C1),
        ),
        # Swapping a 3x3 and a 1x1 conv between the input's fan-out and the path's end (in- and
        # out-neighbours both count).
        (
            _spec(
                [
                    [0, 1, 1, 1, 1, 0, 0],
                    [0, 0, 1, 0, 0, 0, 0],
                    [0, 0, 0, 0, 0, 0, 1],
                    [0, 0, 0, 0, 0, 1, 0],
                    [0, 0, 0, 0, 0, 1, 0],
                    [0, 0, 0, 0, 0, 0, 1],
                    [0, 0, 0, 0, 0, 0, 0],
                ],
                C1,
                C3,
                C3,
                C3,
                C3,
            ),
            (C3, C3, C3, C1, C3),
        ),
        # The Inception cell with its 1x1 conv and one 3x3 of the pair exchanged.
        (_spec(INCEPTION, C1, C3, C3, C3, MP), (C3, C3, C1, C3, MP)),
    ],
)
def test_cells_that_differ_have_different_hashes(first, second):
    other = DAGCellSpec(matrix=first.matrix, ops=("input", *second, "output"))
    assert other.module_hash != first.module_hash and other.spec_hash != first.spec_hash


def test_the_skeleton_is_part_of_the_spec_hash_but_not_of_the_module_hash():
    small, large = _spec(INCEPTION, C1, C3, C3, C3, MP), _spec(INCEPTION, C1, C3, C3, C3, MP, stem_channels=128)
    assert small.module_hash == large.module_hash and small.spec_hash != large.spec_hash


# -- Pruning ------------------------------------------------------------------------------------


def test_a_node_off_every_path_is_pruned_and_the_hash_is_the_smaller_cells():
    smaller = _spec([[0, 1, 1], [0, 0, 1], [0, 0, 0]], C3)
    # Node 2 takes the input but feeds nothing; node 3 feeds the output but nothing feeds it.
    larger = _spec([[0, 1, 1, 0, 1], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]], C3, MP, C1)
    pruned = larger.pruned()
    assert pruned == smaller and pruned.pruned() is pruned
    assert larger.module_hash == smaller.module_hash and larger.spec_hash == smaller.spec_hash
    assert smaller.pruned() is smaller


# -- Validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: DAGCellSpec(matrix=[[0]], ops=["input"]), "matrix must be a square matrix of at least 2"),
        (lambda: DAGCellSpec(matrix=[[0, 1], [0]], ops=["input", "output"]), "matrix must be square"),
        (lambda: DAGCellSpec(matrix=[[0, 2], [0, 0]], ops=["input", "output"]), r"matrix\[0\]\[1\] must be 0 or 1"),
        (lambda: DAGCellSpec(matrix=[[0, 1], [1, 0]], ops=["input", "output"]), "matrix must be upper triangular"),
        (lambda: DAGCellSpec(matrix=[[0, 0], [0, 0]], ops=["input", "output"]), "matrix: no path"),
        (lambda: DAGCellSpec(matrix=[[0, 1], [0, 0]], ops=["input"]), "ops must hold one op name per vertex"),
        (lambda: _spec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], "output"), r"ops\[1\] must be the name of an op"),
        (lambda: DAGCellSpec(matrix=[[0, 1], [0, 0]], ops=["output", "input"]), "ops must start with 'input'"),
        (lambda: _spec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], C3, stacks=0), "stacks must be an integer >= 1"),
        (lambda: _spec([[0, 1, 0], [0, 0, 1], [0, 0, 0]], C3, cells_per_stack=0), "cells_per_stack"),
        (lambda: _spec(INCEPTION, C1, C3, C3, C3, MP, stem_channels=3), "stem_channels must be >= 4"),
        (lambda: DAGCellSpace(max_nodes=1), "max_nodes must be an integer >= 2"),
        (lambda: DAGCellSpace(max_edges=0), "max_edges must be an integer >= 1"),
        (lambda: DAGCellSpace(ops=()), "ops must be a non-empty sequence"),
        (lambda: DAGCellSpace(ops=(C3, C3)), "ops must not repeat"),
        (lambda: DAGCellSpace(ops=(C3, "input")), "ops must hold op names other than"),
        (lambda: DAGCellSpace(stem_channels=4), "stem_channels must be an integer >= 5"),
        (lambda: spaces.create_space("dag", stacks=0), "stacks must be an integer >= 1"),
    ],
)
def test_bad_specs_and_spaces_raise_value_errors_naming_the_field(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_specs_round_trip_through_json_and_accept_nasbench_style_input():
    import numpy as np

    spec = DAGCellSpec(matrix=np.array(INCEPTION), ops=["input", C1, C3, C3, C3, MP, "output"])
    assert spec.matrix[0] == (0, 1, 1, 1, 0, 1, 0) and isinstance(spec.ops, tuple)
    data = json.loads(json.dumps(spec.to_dict()))
    assert data["module_hash"] == spec.module_hash
    assert spaces.spec_from_dict(data) == spec
    assert "out <- 1,2,4,5" in spec.summary()


# -- Decisions: none forced, every spec valid ----------------------------------------------------


def _random_params(space, rng):
    params = {}

    class Random(spaces.Decider):
        def categorical(self, name, choices):
            params[name] = rng.choice(list(choices))
            return params[name]

        def integer(self, name, low, high):
            raise AssertionError(name)

    space.decide(Random())
    return params


def _paths(n):
    """Every input-to-output path of an n-node DAG, as its edges."""
    for size in range(n - 1):
        for inner in itertools.combinations(range(1, n - 1), size):
            nodes = (0, *inner, n - 1)
            yield list(itertools.pairwise(nodes))


def _forced(decided, edge, n, max_edges):
    """The forced answer of ``edge`` after ``decided`` (None if both answers are possible), by trying every path."""
    used = sum(decided.values())

    def fits(path, with_edge):
        if any(decided.get(e) == 0 for e in path) or (edge in path) != with_edge:
            return False
        added = sum(1 for e in path if e not in decided)
        return used + added <= max_edges

    can_be_on = any(fits(path, True) for path in _paths(n))
    can_be_off = any(fits(path, False) for path in _paths(n))
    assert can_be_on or can_be_off
    return None if can_be_on and can_be_off else int(can_be_on)


def _live(matrix):
    n = len(matrix)
    reached, reaching = {0}, {n - 1}
    for v in range(1, n):
        if any(matrix[u][v] for u in reached):
            reached.add(v)
    for v in range(n - 2, -1, -1):
        if any(matrix[v][w] for w in reaching):
            reaching.add(v)
    return sorted(reached & reaching)


def _check_decisions(space, params, spec):
    """Replays ``params``: an edge is asked exactly when its answer is not forced, ops only on live
    nodes, and ``spec`` is the cell these answers (and the forced ones) make, pruned.
    """
    n = space.max_nodes
    order = [(i, j) for j in range(1, n) for i in range(j - 1, -1, -1)]
    asked = [name for name in params if name.startswith("edge_")]
    assert asked == [f"edge_{i}_to_{j}" for i, j in order if f"edge_{i}_to_{j}" in params]
    decided = {}
    for i, j in order:
        name = f"edge_{i}_to_{j}"
        forced = _forced(decided, (i, j), n, space.max_edges)
        if forced is None:
            assert name in params, f"{name} is free but was not asked"
            decided[(i, j)] = params[name]
        else:
            assert name not in params, f"{name} is forced to {forced} but was asked"
            decided[(i, j)] = forced
    matrix = [[decided.get((i, j), 0) for j in range(n)] for i in range(n)]
    live = _live(matrix)
    assert [name for name in params if name.endswith("/op")] == [f"node_{v}/op" for v in live[1:-1]]
    assert spec.matrix == tuple(tuple(matrix[a][b] for b in live) for a in live)
    assert spec.ops[1:-1] == tuple(params[f"node_{v}/op"] for v in live[1:-1])
    assert spec == spec.pruned() and spec.num_edges <= space.max_edges


@pytest.mark.parametrize("max_nodes", [3, 5, 7])
def test_random_answers_give_valid_cells_and_never_a_forced_question(max_nodes):
    rng = random.Random(max_nodes)
    space = DAGCellSpace(max_nodes=max_nodes, max_edges=min(9, max_nodes + 2))
    for _ in range(150):
        params = _random_params(space, rng)
        _check_decisions(space, params, space.spec_from_params(params))


def _score(space):
    def objective(trial):
        spec = space.suggest(trial)
        trial.set_user_attr("spec", spec.to_dict())
        return float(spec.num_edges + 2 * spec.ops.count(C3) - spec.ops.count(MP))

    return objective


@pytest.mark.parametrize(
    "sampler",
    [
        lambda space: MetaQNNSampler(seed=1),  # the default state: a decision and the one before it
        lambda space: AgingEvolutionSampler(population_size=8, sample_size=3, seed=1),
        lambda space: AgingEvolutionSampler(population_size=8, sample_size=3, seed=1, dedup_key=space.dedup_key),
    ],
    ids=["metaqnn", "evolution", "evolution-key"],
)
def test_every_spec_the_samplers_produce_is_valid_and_asked_only_free_decisions(sampler):
    space = DAGCellSpace()
    study = optuna.create_study(direction="maximize", sampler=sampler(space))
    study.optimize(_score(space), n_trials=40)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) >= 35
    for trial in complete:
        spec = spaces.spec_from_dict(trial.user_attrs["spec"])
        assert spec == space.spec_from_params(trial.params) and spec.num_vertices <= 7
        _check_decisions(space, trial.params, spec)


def test_dedup_key_makes_evolution_evaluate_each_cell_once():
    space = DAGCellSpace()
    sampler = AgingEvolutionSampler(population_size=10, sample_size=3, seed=0, dedup_key=space.dedup_key)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(_score(space), n_trials=60)
    hashes = [space.spec_from_params(t.params).module_hash for t in study.trials if t.state.name == "COMPLETE"]
    assert len(hashes) == 60 and len(set(hashes)) == 60

    # Without the key, evolution's children repeat cells its parents already were (same cell, other numbering).
    plain = optuna.create_study(
        direction="maximize", sampler=AgingEvolutionSampler(population_size=10, sample_size=3, seed=0)
    )
    plain.optimize(_score(space), n_trials=60)
    assert len({space.spec_from_params(t.params).module_hash for t in plain.trials}) < 60


def test_dedup_key_is_the_hash_once_the_cell_is_whole():
    space = DAGCellSpace(max_nodes=4)
    params = _random_params(space, random.Random(3))
    key = space.dedup_key(params)
    assert json.loads(key)[0] == space.spec_from_params(params).spec_hash
    assert space.dedup_key(dict(list(params.items())[:-1])) is None
    assert json.loads(space.dedup_key({**params, "lr": 0.1}))[1] == [["lr", "0.1"]]


# -- The network ----------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(1, 8, 8), (1, 28, 28), (3, 32, 32), (2, 7, 11)])
def test_networks_map_any_input_shape_to_logits(shape):
    rng = random.Random(0)
    space = DAGCellSpace(stem_channels=8, stacks=3, cells_per_stack=2)
    cells = [space.spec_from_params(_random_params(space, rng)) for _ in range(3)]
    cells.append(_spec([[0, 1], [0, 0]]))  # the input straight to the output: a projection
    for spec in cells:
        model = models.build_model(spec, input_shape=shape, num_classes=10)
        assert model(torch.randn(2, *shape)).shape == (2, 10)


def _cells(model):
    return [m for m in model.modules() if hasattr(m, "vertex_channels")]


def test_the_inception_cell_follows_nasbench_channel_rule():
    # nasbench's README cell has a 1x1 conv at vertex 1; the channel counts depend on the edges only.
    spec = _spec(INCEPTION, C1, C3, C3, C3, MP, stem_channels=18, stacks=2, cells_per_stack=2)
    model = models.build_model(spec, input_shape=(3, 16, 16), num_classes=10)
    first, second, third, fourth = _cells(model)
    # 18 output channels over the 4 vertices feeding the output (1, 2, 4, 5): 5, 5, 4, 4, the remainder
    # to the first; vertex 3 feeds only vertex 4 and takes its 4.
    assert first.vertex_channels == second.vertex_channels == [18, 5, 5, 4, 4, 4, 18]
    # The second stack doubles to 36: 9 each.
    assert third.vertex_channels == [18, 9, 9, 9, 9, 9, 36]
    assert fourth.vertex_channels == [36, 9, 9, 9, 9, 9, 36]
    # The weights agree: each op maps its vertex's channels, the input is projected to each vertex it feeds.
    assert first.ops["1"][0].weight.shape == (5, 5, 1, 1)  # conv 1x1
    assert first.ops["4"][0].weight.shape == (4, 4, 3, 3)
    assert {v: tuple(p[0].weight.shape) for v, p in third.projections.items()} == {
        "1": (9, 18, 1, 1),
        "2": (9, 18, 1, 1),
        "3": (9, 18, 1, 1),
        "5": (9, 18, 1, 1),
    }
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)

    # The benchmark's skeleton: 128 channels over 4 vertices, 32 each; doubled in each later stack.
    benchmark = spaces.DAGCellSpace.nasbench101()
    big = DAGCellSpec(
        matrix=INCEPTION,
        ops=spec.ops,
        stem_channels=benchmark.stem_channels,
        stacks=benchmark.stacks,
        cells_per_stack=benchmark.cells_per_stack,
    )
    channels = [
        cell.vertex_channels for cell in _cells(models.build_model(big, input_shape=(3, 32, 32), num_classes=10))
    ]
    assert len(channels) == 9
    assert channels[0] == [128, 32, 32, 32, 32, 32, 128]
    assert channels[3] == [128, 64, 64, 64, 64, 64, 256] and channels[8] == [512, 128, 128, 128, 128, 128, 512]


def test_a_vertex_wider_than_the_one_it_feeds_is_cut_to_its_width():
    # 15 channels over vertices 1 and 3: 8 and 7; vertex 2 feeds vertex 3 and takes 7; vertex 1's
    # 8 channels reach vertex 2 cut to 7.
    spec = _spec(
        [[0, 1, 0, 1, 0], [0, 0, 1, 0, 1], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1], [0, 0, 0, 0, 0]],
        C3,
        MP,
        C1,
        stem_channels=15,
        stacks=1,
    )
    model = models.build_model(spec, input_shape=(1, 8, 8), num_classes=3)
    (cell,) = _cells(model)
    assert cell.vertex_channels == [15, 8, 7, 7, 15]
    assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)


# -- The command line -----------------------------------------------------------------------------


def test_a_dag_search_runs_from_the_command_line_and_its_front_prints(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    common = ["--storage", url, "--study-name", "dag"]
    search = [*TINY_SEARCH, "--space", "dag", "--max-nodes", "5", "--channels", "4", "--no-mlflow"]
    artifacts = ["--artifact-dir", str(tmp_path / "artifacts")]
    assert main(["search", *common, *search, *artifacts, "--sampler", "evolution", "--n-trials", "4"]) == 0
    assert "4 trials, Pareto front of" in capsys.readouterr().out
    # Another sampler on the same study is a change of its settings, made on purpose.
    resumed = ["--sampler", "metaqnn", "--n-trials", "2", "--force-settings"]
    assert main(["search", *common, *search, *artifacts, *resumed]) == 0
    assert "6 trials, Pareto front of" in capsys.readouterr().out

    assert main(["pareto", *common, "--out-dir", str(tmp_path / "plots")]) == 0
    assert "hypervolume:" in capsys.readouterr().out
    study = optuna.load_study(storage=url, study_name="dag")
    trial = next(t for t in study.trials if t.state.name == "COMPLETE")
    spec = spaces.spec_from_dict(trial.user_attrs["spec"])
    assert isinstance(spec, DAGCellSpec) and spec.num_vertices <= 5 and spec.stem_channels == 4
    saved = optuna.artifacts.get_all_artifact_meta(trial, storage=study._storage)
    assert {m.filename for m in saved} >= {"weights.npz", "network.png"}

    out = tmp_path / "export"
    assert main(["export", *common, "--trial", str(trial.number), "--out", str(out)]) == 0
    exported = json.loads((out / "spec.json").read_text())
    assert exported["spec"]["space"] == "dag" and exported["spec_hash"] == trial.user_attrs["spec_hash"]
    assert any(path.name.startswith("model.") and path.stat().st_size > 0 for path in out.iterdir())
