"""ENAS: the chain space's skip connections, supernets, the SharedWeights objective and derive."""

import dataclasses
import json
import os

import optuna
import pytest
import torch
from torch import nn

from optuna_nas import models
from optuna_nas import objectives
from optuna_nas import samplers
from optuna_nas import spaces
from optuna_nas.spaces import ChainLayer
from optuna_nas.spaces import ChainSpec

CELL = spaces.CellSpace(max_blocks=2, ops=("sep_conv_3x3", "max_pool_3x3", "identity"), channels=8)
SKIP_CHAIN = spaces.ChainSpace(max_layers=5, input_size=8, filters=(4, 8), fc_units=(16,), skip_connections=True)
SMALL = {"batches_per_trial": 4, "batch_size": 32, "eval_batches": 2}


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sample(space, n, seed=0):
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    trials = []
    for _ in range(n):
        trial = study.ask()
        trials.append((space.suggest(trial), dict(trial.params)))
        study.tell(trial, 0.0)
    return trials


def _state(objective):
    return {name: tensor.detach().clone() for name, tensor in objective.supernet.state_dict().items()}


def _momentum(objective):
    optimizer = objective._optimizer
    return {
        name: optimizer.state[p]["momentum_buffer"].clone()
        for name, p in objective.supernet.named_parameters()
        if "momentum_buffer" in optimizer.state.get(p, {})
    }


def _system_attrs(study):
    return study._storage.get_study_system_attrs(study._study_id)


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- ChainSpace(skip_connections=True) -------------------------------------------------------------


def test_skip_connections_are_off_by_default_and_asked_for_earlier_convs_when_on():
    plain = _sample(spaces.ChainSpace(max_layers=5, input_size=8, filters=(4, 8)), 40)
    assert not any("skip" in name for _, params in plain for name in params)
    assert "skip_connections" not in spaces.ChainSpace().to_dict()

    skipped = _sample(SKIP_CHAIN, 80, seed=1)
    for spec, params in skipped:
        convs = []
        for index, layer in enumerate(spec.layers):
            asked = sorted(int(name.rsplit("_", 1)[1]) for name in params if name.startswith(f"layer_{index}/skip_"))
            if layer.type == "conv":
                assert asked == convs  # one 0/1 decision per earlier conv layer
                assert list(layer.skips or ()) == [j for j in convs if params[f"layer_{index}/skip_{j}"] == 1]
                convs.append(index)
            else:
                assert asked == [] and layer.skips is None
        assert SKIP_CHAIN.spec_from_params(params) == spec
        assert spaces.spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    assert any(layer.skips for spec, _ in skipped for layer in spec.layers)
    # MetaQNN's state function reads the skip decisions too.
    for _, params in skipped[:10]:
        for name in params:
            SKIP_CHAIN.metaqnn_state(name, {k: v for k, v in params.items() if k != name})


def test_a_chain_without_skips_is_the_same_spec_in_either_space():
    layer = ChainLayer("conv", 3, 8, 1, skips=())
    assert layer == ChainLayer("conv", 3, 8, 1) and "skips" not in layer.to_dict()
    spec = ChainSpec(layers=(ChainLayer("conv", 3, 8, 1), ChainLayer("conv", 3, 8, 1, skips=[0])))
    assert spec.layers[1].skips == (0,)
    assert spec.to_dict()["layers"][1]["skips"] == [0]
    assert "skip0" in spec.summary()


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ChainLayer("max_pool", skips=(0,)), "max_pool layer takes no skips"),
        (lambda: ChainLayer("conv", 3, 8, 1, skips=(0, 0)), "skips must not repeat"),
        (lambda: ChainLayer("conv", 3, 8, 1, skips=(-1,)), "skips must be an integer"),
        (lambda: ChainSpec(layers=(ChainLayer("conv", 3, 8, 1, skips=(0,)),)), r"layers\[0\].skips: 0"),
        (
            lambda: ChainSpec(layers=(ChainLayer("max_pool"), ChainLayer("conv", 3, 8, 1, skips=(0,)))),
            r"layers\[1\].skips: 0 is not an earlier conv",
        ),
        (lambda: spaces.ChainSpace(skip_connections="yes"), "skip_connections must be True or False"),
    ],
)
def test_bad_skips_are_refused(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def _chain_child_as_network(supernet, spec):
    """The standalone network of ``spec`` with the supernet's weights for it."""
    model = models.build_model(spec, input_shape=supernet.input_shape, num_classes=supernet.num_classes)
    keys = supernet.keys_of(spec)
    with torch.no_grad():
        for index, layer in enumerate(spec.layers):
            own = [k for k in keys if k.split("/")[1:2] == [str(index)]]
            if layer.type == "conv":
                model.units[index].load_state_dict(supernet.module(own[0]).state_dict(), strict=False)
                for key in own:
                    if key.startswith("skip/"):
                        source = key.split("/")[2]
                        projection = model.projections[f"{index}_{source}"]
                        conv = next(m for m in projection.modules() if isinstance(m, nn.Conv2d))
                        conv.weight.copy_(supernet.module(key).weight)
                    if key.startswith("skipnorm/"):
                        model.norms[str(index)].load_state_dict(supernet.module(key).state_dict(), strict=False)
            elif layer.type == "fc":
                linear = next(m for m in model.units[index] if isinstance(m, nn.Linear))
                linear.load_state_dict(supernet.module(own[0])[0].state_dict())
        model.classifier.load_state_dict(supernet.module(keys[-1]).state_dict())
    return model


def test_skip_chains_build_and_run_in_the_builder_and_the_supernet():
    supernet = models.build_supernet(SKIP_CHAIN, input_shape=(1, 8, 8), num_classes=10, seed=0)
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with_skips = [spec for spec, _ in _sample(SKIP_CHAIN, 300, seed=2) if any(layer.skips for layer in spec.layers)]
    assert len(with_skips) >= 5
    for spec in with_skips[:8]:
        model = models.build_model(spec, input_shape=(1, 8, 8), num_classes=10)
        model(x).sum().backward()
        supernet.ensure(supernet.keys_of(spec))
        logits = supernet(x, spec)
        logits.sum().backward()
        assert logits.shape == (16, 10)
        # The child under the shared weights is its standalone network with those weights (both
        # normalising with the batch's statistics).
        child = _chain_child_as_network(supernet, spec).train()
        assert torch.allclose(child(x), supernet(x, spec), atol=1e-5)


def test_a_chain_supernet_makes_each_module_from_the_seed_and_its_key_alone():
    specs = [spec for spec, _ in _sample(SKIP_CHAIN, 20, seed=3)]
    one = models.build_supernet(SKIP_CHAIN, input_shape=(1, 8, 8), num_classes=10, seed=0)
    two = models.build_supernet(SKIP_CHAIN, input_shape=(1, 8, 8), num_classes=10, seed=0)
    for spec in specs:
        one.ensure(one.keys_of(spec))
    for spec in reversed(specs[5:]):
        two.ensure(two.keys_of(spec))
    for key in two.keys():
        assert _equal(one.module(key).state_dict(), two.module(key).state_dict())
    other = models.build_supernet(SKIP_CHAIN, input_shape=(1, 8, 8), num_classes=10, seed=1)
    other.ensure(other.keys_of(specs[0]))
    key = other.keys_of(specs[0])[0]
    assert not _equal(one.module(key).state_dict(), other.module(key).state_dict())
    with pytest.raises(ValueError, match="key"):
        one.create("conv/0/k3")


def test_a_cell_child_under_the_shared_weights_is_its_standalone_network():
    space = spaces.CellSpace(max_blocks=3, ops=("sep_conv_3x3", "max_pool_3x3", "identity"), channels=4, stages=3)
    supernet = models.build_supernet(space, input_shape=(1, 8, 8), num_classes=10, seed=0)
    x = torch.randn(16, 1, 8, 8, generator=torch.Generator().manual_seed(0))

    def columns(weight, module, used):
        c_out = weight.shape[0]
        return weight.view(c_out, module.parts, module.part_channels, 1, 1)[:, used].reshape(c_out, -1, 1, 1)

    for spec, _ in _sample(space, 6, seed=4):
        model = models.build_model(spec, input_shape=(1, 8, 8), num_classes=10)
        with torch.no_grad():
            model.stem.load_state_dict(supernet.module("stem").state_dict(), strict=False)
            used = [[0], [0]]
            for p, cell in enumerate(model.cells):
                for which, pre in ((0, cell.preprocess0), (1, cell.preprocess1)):
                    shared = supernet.module(f"cell{p}/pre{which}")
                    if hasattr(pre, "conv_a"):
                        pre.conv_a.weight.copy_(columns(shared.conv_a.weight, shared, used[which]))
                        pre.conv_b.weight.copy_(columns(shared.conv_b.weight, shared, used[which]))
                        pre.bn.load_state_dict(shared.bn.state_dict(), strict=False)
                    else:
                        pre[1].weight.copy_(columns(shared.conv.weight, shared, used[which]))
                        pre[2].load_state_dict(shared.bn.state_dict(), strict=False)
                for b, block in enumerate(spec.blocks):
                    for half, source, op in ((0, block.input_a, block.op_a), (1, block.input_b, block.op_b)):
                        shared = supernet.module(f"cell{p}/block{b}/in{source}/{op}")
                        cell.ops[2 * b + half].load_state_dict(shared.state_dict(), strict=False)
                used = [used[1], spec.unused_blocks]
            shared = supernet.module("classifier")
            weight = shared.linear.weight.view(10, shared.parts, shared.part_channels)[:, spec.unused_blocks]
            model.classifier.weight.copy_(weight.flatten(1))
            model.classifier.bias.copy_(shared.linear.bias)
        assert torch.allclose(model.train()(x), supernet(x, spec), atol=1e-5)
    with pytest.raises(ValueError, match="skeleton"):
        supernet.keys_of(spaces.CellSpec(blocks=spec.blocks, channels=8))
    with pytest.raises(ValueError, match="no supernet"):
        models.build_supernet(spaces.NASBench201Space(), input_shape=(1, 8, 8), num_classes=10)


# -- SharedWeights ---------------------------------------------------------------------------------


def test_shared_weights_train_across_trials_and_a_child_scores_better_on_its_second_visit(digits):
    settings = {**SMALL, "batches_per_trial": 8}
    objective = objectives.SharedWeights(CELL, digits, **settings, objectives=("accuracy",))
    spec, params = _sample(CELL, 1, seed=5)[0]
    untrained = objective.score(spec)
    initial = _state(objective)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(3):
        study.enqueue_trial(params)
    study.optimize(objective, n_trials=1)
    after_one = _state(objective)
    assert not _equal(initial, after_one)
    study.optimize(objective, n_trials=3)  # two more visits, then another child
    values = [trial.value for trial in study.trials]
    assert untrained < 0.2  # chance, with ten classes
    assert values[0] > untrained + 0.1 and values[2] > values[0] + 0.1
    assert objective.batches_trained == objective.trials_trained * 8 == 32
    # The fourth child trained the weights the first three trained.
    assert study.trials[3].user_attrs["shared_batches"] == 32
    for trial in study.trials:
        attrs = trial.user_attrs
        assert spaces.spec_from_dict(attrs["spec"]).spec_hash == attrs["spec_hash"]
        assert attrs["dataset"] == "digits" and attrs["input_shape"] == [1, 8, 8] and attrs["num_classes"] == 10
        assert attrs["params"] > 0 and attrs["flops"] == 2 * attrs["macs"]


def test_the_same_seed_gives_the_same_results(digits):
    runs = []
    for seed in (0, 0, 1):
        objective = objectives.SharedWeights(SKIP_CHAIN, digits, **SMALL, seed=seed)
        study = optuna.create_study(directions=objective.directions, sampler=optuna.samplers.RandomSampler(seed=2))
        study.optimize(objective, n_trials=4)
        runs.append(([trial.values for trial in study.trials], _state(objective)))
    assert runs[0][0] == runs[1][0] and _equal(runs[0][1], runs[1][1])
    assert not _equal(runs[0][1], runs[2][1])


def test_weights_are_saved_and_an_interrupted_search_resumes_from_the_latest(digits, tmp_path):
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    storage = f"sqlite:///{tmp_path / 'enas.db'}"
    first = objectives.SharedWeights(CELL, digits, **SMALL, artifact_store=store, save_every=2)
    study = optuna.create_study(storage=storage, directions=first.directions, sampler=samplers.ENASSampler(seed=0))
    study.optimize(first, n_trials=2)  # saved after the second trial
    saved, saved_momentum = _state(first), _momentum(first)
    assert saved_momentum
    study.optimize(first, n_trials=1)  # then interrupted: this trial's training is not saved
    assert not _equal(saved, _state(first))

    # A new process: the old owner is gone without releasing the study, so it takes over.
    resumed = objectives.SharedWeights(CELL, digits, **SMALL, artifact_store=store, save_every=2, take_over=True)
    study = optuna.load_study(study_name=study.study_name, storage=storage, sampler=samplers.ENASSampler(seed=0))
    resumed.attach(study)
    assert _equal(resumed_state := _state(resumed), saved) and _equal(_momentum(resumed), saved_momentum)
    assert resumed.batches_trained == 2 * SMALL["batches_per_trial"] and resumed.trials_trained == 2
    assert resumed_state.keys() == saved.keys()
    study.optimize(resumed, n_trials=2)  # its second trial is the fourth to train: saved
    resumed.release()
    assert not _system_attrs(study).get("SharedWeights:owner")

    # Released: a later objective resumes without taking over, from what release saved.
    later = objectives.SharedWeights(CELL, digits, **SMALL, artifact_store=store)
    study = optuna.load_study(study_name=study.study_name, storage=storage, sampler=samplers.ENASSampler(seed=0))
    later.attach(study)
    assert _equal(_state(later), _state(resumed)) and later.trials_trained == 4
    files = [meta.filename for meta in optuna.artifacts.get_all_artifact_meta(study)]
    assert "shared_weights_000002.npz" in files and "shared_weights_000004.npz" in files

    # Saved weights need their store, and a supernet like theirs; a refused objective claims nothing.
    owner = _system_attrs(study)["SharedWeights:owner"]
    with pytest.raises(ValueError, match=r"artifact_store: study .* has saved shared weights"):
        objectives.SharedWeights(CELL, digits, **SMALL, take_over=True).attach(study)
    other = objectives.SharedWeights(CELL, digits, **SMALL, seed=3, artifact_store=store, take_over=True)
    with pytest.raises(ValueError, match="saved the weights of another supernet"):
        other.attach(study)
    renamed = dataclasses.replace(digits, name="other digits")
    with pytest.raises(ValueError, match=r"dataset: .* saved weights trained on 'digits', got 'other digits'"):
        objectives.SharedWeights(CELL, renamed, **SMALL, artifact_store=store, take_over=True).attach(study)
    assert _system_attrs(study)["SharedWeights:owner"] == owner


def test_a_second_objective_on_the_study_is_refused_with_the_owner_named(digits, tmp_path):
    storage = f"sqlite:///{tmp_path / 'enas.db'}"
    owner = objectives.SharedWeights(CELL, digits, **SMALL)
    study = optuna.create_study(storage=storage, directions=owner.directions)
    study.optimize(owner, n_trials=1)
    claim = _system_attrs(study)["SharedWeights:owner"]
    assert claim["pid"] == os.getpid()

    intruder = objectives.SharedWeights(CELL, digits, **SMALL)
    with pytest.raises(ValueError, match=rf"belong to another SharedWeights objective \(process {os.getpid()} on host"):
        study.optimize(intruder, n_trials=1)
    assert study.trials[-1].state == optuna.trial.TrialState.FAIL and not study.trials[-1].params

    # A process elsewhere, as another machine would write it.
    study._storage.set_study_system_attr(
        study._study_id, "SharedWeights:owner", {"token": "elsewhere", "host": "node-7", "pid": 4242, "since": "x"}
    )
    with pytest.raises(ValueError, match=r"process 4242 on host 'node-7'.*take_over=True"):
        objectives.SharedWeights(CELL, digits, **SMALL).attach(study)
    # The owner itself stops too: its study was taken.
    with pytest.raises(ValueError, match="now belong to another SharedWeights objective"):
        study.optimize(owner, n_trials=1)

    taker = objectives.SharedWeights(CELL, digits, **SMALL, take_over=True)
    study.optimize(taker, n_trials=1)
    assert study.trials[-1].state == optuna.trial.TrialState.COMPLETE
    with pytest.raises(ValueError, match="holds the shared weights of study"):
        taker.attach(optuna.create_study(directions=taker.directions))


def test_derive_samples_the_controller_and_returns_the_best_spec_of_the_space(digits, tmp_path):
    store = optuna.artifacts.FileSystemArtifactStore(str(tmp_path))
    objective = objectives.SharedWeights(CELL, digits, **SMALL, artifact_store=store, save_every=3)
    study = optuna.create_study(directions=objective.directions, sampler=samplers.ENASSampler(seed=0))
    study.optimize(objective, n_trials=6)

    derived = objectives.derive(study, objective=objective, n=8, seed=1)
    assert isinstance(derived.spec, spaces.CellSpec)
    assert CELL.spec_from_params(derived.params) == derived.spec
    assert 1 <= len(derived.scores) <= 8 and derived.accuracy == max(derived.scores.values())
    assert derived.scores[derived.spec.spec_hash] == derived.accuracy
    model = models.build_model(derived.spec, input_shape=(1, 8, 8), num_classes=10)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, 10)
    assert objectives.derive(study, objective=objective, n=8, seed=1) == derived

    # Another process derives the same from the study's saved weights and trials.
    elsewhere = objectives.SharedWeights(CELL, digits, **SMALL, artifact_store=store)
    assert objectives.derive(study, objective=elsewhere, n=8, seed=1, sampler=samplers.ENASSampler(seed=0)) == derived

    # Retrained from scratch by the training objective, from its params.
    retrain = objectives.ImageClassification(CELL, digits, epochs=1, batch_size=256)
    fresh = optuna.create_study(directions=retrain.directions)
    fresh.enqueue_trial(derived.params)
    fresh.optimize(retrain, n_trials=1)
    assert fresh.trials[0].user_attrs["spec_hash"] == derived.spec.spec_hash

    with pytest.raises(ValueError, match="sampler: derive samples from the study's controller"):
        objectives.derive(study, objective=objective, sampler=optuna.samplers.RandomSampler())
    with pytest.raises(ValueError, match="n must be an integer >= 1"):
        objectives.derive(study, objective=objective, n=0)
    untrained = optuna.create_study(directions=objective.directions, sampler=samplers.ENASSampler(seed=0))
    with pytest.raises(ValueError, match="has no trained shared weights"):
        objectives.derive(untrained, objective=objectives.SharedWeights(CELL, digits, **SMALL))


def test_a_chain_search_with_skips_runs_in_the_shared_weights(digits):
    objective = objectives.SharedWeights(SKIP_CHAIN, digits, **SMALL)
    study = optuna.create_study(directions=objective.directions, sampler=samplers.ENASSampler(seed=1))
    study.optimize(objective, n_trials=8)
    assert all(trial.state == optuna.trial.TrialState.COMPLETE for trial in study.trials)
    assert any("+skip" in trial.user_attrs["architecture"] for trial in study.trials)
    assert any(key.startswith("skipnorm/") for key in objective.supernet.keys())
    derived = objectives.derive(study, objective=objective, n=5)
    assert isinstance(derived.spec, ChainSpec)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"batches_per_trial": 0}, "batches_per_trial must be an integer >= 1, got 0"),
        ({"batch_size": 1}, "batch_size must be an integer >= 2, got 1"),
        ({"learning_rate": 0.0}, "learning_rate must be a finite number > 0.0, got 0.0"),
        ({"momentum": 1.0}, "momentum must be a finite number in"),
        ({"weight_decay": -1.0}, "weight_decay"),
        ({"gradient_clip": float("nan")}, "gradient_clip"),
        ({"eval_batches": 0}, "eval_batches must be an integer >= 1, got 0"),
        ({"objectives": ("accuracy", "speed")}, "objectives must be one of"),
        ({"objectives": ("accuracy", "accuracy")}, "objectives must not repeat"),
        ({"objectives": "accuracy"}, "objectives must be a non-empty sequence"),
        ({"seed": -1}, "seed must be an integer >= 0, got -1"),
        ({"device": "tpu"}, "device must be"),
        ({"artifact_store": "folder"}, "artifact_store must be an Optuna artifact store"),
        ({"save_every": 0}, "save_every must be an integer >= 1, got 0"),
        ({"take_over": 1}, "take_over must be True or False, got 1"),
        ({"space": spaces.NASBench201Space()}, "space: NASBench201Space has no supernet"),
        ({"space": spaces.ChainSpace()}, r"space: ChainSpace\(input_size=28\) does not fit"),
        ({"space": "cell"}, "space must be an optuna_nas.spaces.Space"),
        ({"dataset": "imagenet"}, "dataset must be one of"),
    ],
)
def test_bad_arguments_are_refused_by_name(kwargs, match, digits):
    arguments = {"space": CELL, "dataset": digits, **kwargs}
    with pytest.raises(ValueError, match=match):
        objectives.SharedWeights(arguments.pop("space"), arguments.pop("dataset"), **arguments)


def test_saving_needs_a_store_and_a_study(digits):
    objective = objectives.SharedWeights(CELL, digits, **SMALL)
    with pytest.raises(ValueError, match="artifact_store"):
        objective.save()
    with pytest.raises(ValueError, match="study: the objective has run no trial"):
        objective.release()
    with pytest.raises(ValueError, match="spec must be a CellSpec"):
        objective.score(ChainSpec(layers=(ChainLayer("fc", units=8),)))
