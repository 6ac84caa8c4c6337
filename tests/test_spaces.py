import json

import optuna
import pytest

from optuna_nas import spaces
from optuna_nas.spaces import CellBlock
from optuna_nas.spaces import CellSpec
from optuna_nas.spaces import ChainLayer
from optuna_nas.spaces import ChainSpec
from optuna_nas.spaces import NASBench201Spec


def _sample(space, n, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    specs = []
    for _ in range(n):
        trial = study.ask()
        specs.append(space.suggest(trial))
        study.tell(trial, 0.0)
    return study, specs


@pytest.mark.parametrize(
    "space",
    [spaces.ChainSpace(), spaces.ChainSpace(input_size=8, max_layers=8), spaces.CellSpace(), spaces.NASBench201Space()],
    ids=["chain28", "chain8", "cell", "nb201"],
)
def test_suggest_round_trips_through_params_and_json(space):
    study, specs = _sample(space, 60)
    for trial, spec in zip(study.trials, specs, strict=True):
        assert space.spec_from_params(trial.params) == spec
        data = json.loads(json.dumps(spec.to_dict()))
        assert spaces.spec_from_dict(data) == spec
        assert spaces.spec_from_dict(data).spec_hash == spec.spec_hash
    assert len({s.spec_hash for s in specs}) > 10


def test_chain_names_are_stable_and_each_name_has_one_distribution():
    space = spaces.ChainSpace(max_layers=6)
    study, _ = _sample(space, 200, seed=3)
    seen = {}
    for trial in study.trials:
        for name, distribution in trial.distributions.items():
            assert name.startswith("layer_")
            assert seen.setdefault(name, distribution) == distribution


def test_chain_legality_rules_hold():
    space = spaces.ChainSpace(max_layers=7, input_size=28, max_fc_layers=2)
    _, specs = _sample(space, 300, seed=1)
    for spec in specs:
        size, previous, n_fc = 28, None, 0
        assert 1 <= len(spec.layers) <= 7
        for layer in spec.layers:
            if previous is not None and previous.type == "fc":
                assert layer.type == "fc"
            if layer.type in ("max_pool", "avg_pool"):
                assert size >= space.min_pool_size
                assert previous is None or previous.type not in ("max_pool", "avg_pool")
                size = -(-size // 2)
            elif layer.type == "conv":
                assert layer.kernel <= size
                size = -(-size // layer.stride)
            else:
                assert size <= space.max_fc_input_size
                n_fc += 1
            previous = layer
        assert n_fc <= 2
    assert any(layer.type == "fc" for spec in specs for layer in spec.layers)
    assert any(layer.type == "max_pool" for spec in specs for layer in spec.layers)


def test_chain_narrowed_decisions_say_so_in_their_name():
    space = spaces.ChainSpace(input_size=4, max_layers=3, min_pool_size=4)
    params = {
        "layer_0/type": "max_pool",
        "layer_1/type/no_pool": "conv",
        "layer_1/kernel/upto_1": 1,
        "layer_1/filters": 16,
        "layer_1/stride": 2,
        "layer_2/type/no_pool": "stop",
    }
    spec = space.spec_from_params(params)
    assert [layer.type for layer in spec.layers] == ["max_pool", "conv"]


def test_spec_from_params_rejects_illegal_and_missing_decisions():
    space = spaces.NASBench201Space()
    with pytest.raises(ValueError, match="edge_0_to_1"):
        space.spec_from_params({})
    params = dict.fromkeys(
        ["edge_0_to_1", "edge_0_to_2", "edge_1_to_2", "edge_0_to_3", "edge_1_to_3", "edge_2_to_3"], "none"
    )
    params["edge_2_to_3"] = "conv_9x9"
    with pytest.raises(ValueError, match="conv_9x9"):
        space.spec_from_params(params)


def test_nasbench201_arch_string_round_trip():
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    spec = NASBench201Spec.from_arch_str(arch)
    assert spec.arch_str == arch
    assert spec.ops == ("nor_conv_3x3", "nor_conv_3x3", "avg_pool_3x3", "skip_connect", "nor_conv_3x3", "skip_connect")
    with pytest.raises(ValueError, match="arch"):
        NASBench201Spec.from_arch_str("|nor_conv_3x3~0|")


def test_cell_hash_ignores_the_order_of_a_blocks_two_halves():
    a = CellSpec(blocks=(CellBlock(0, "identity", 1, "sep_conv_3x3"),))
    b = CellSpec(blocks=(CellBlock(1, "sep_conv_3x3", 0, "identity"),))
    c = CellSpec(blocks=(CellBlock(1, "identity", 0, "sep_conv_3x3"),))
    assert a.spec_hash == b.spec_hash
    assert a.spec_hash != c.spec_hash


def test_cell_num_blocks_is_a_decision_and_inputs_only_reach_back():
    space = spaces.CellSpace(max_blocks=4)
    study, specs = _sample(space, 80)
    assert {len(s.blocks) for s in specs} == {1, 2, 3, 4}
    assert all(t.distributions["num_blocks"] == optuna.distributions.IntDistribution(1, 4) for t in study.trials)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: spaces.ChainSpace(max_layers=0), "max_layers.*0"),
        (lambda: spaces.ChainSpace(filters=()), r"filters.*\(\)"),
        (lambda: spaces.ChainSpace(kernel_sizes=(3, -1)), "kernel_sizes"),
        (lambda: spaces.CellSpace(ops=[]), r"ops.*\[\]"),
        (lambda: spaces.CellSpace(ops=["sep_conv_3x3", "conv_9x9"]), "conv_9x9.*known ops"),
        (lambda: spaces.CellSpace(min_blocks=3, max_blocks=2), "min_blocks"),
        (lambda: ChainSpec(layers=(ChainLayer("fc", units=10), ChainLayer("conv", 3, 8, 1))), "after a fully"),
        (lambda: ChainLayer("conv", kernel=3, filters=8), "stride"),
        (lambda: CellSpec(blocks=(CellBlock(0, "identity", 2, "identity"),)), "input_b"),
        (lambda: NASBench201Spec(ops=("none",) * 5), "ops"),
        (lambda: spaces.create_space("grid"), "grid"),
        (lambda: spaces.spec_from_dict({"space": "grid"}), "grid"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(make, match):
    with pytest.raises(ValueError, match=match):
        make()
