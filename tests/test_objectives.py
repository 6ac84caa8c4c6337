import optuna
import pytest
import torch

from optuna_nas import objectives
from optuna_nas import spaces
from optuna_nas.objectives import _training

SMALL_SPACES = [
    spaces.ChainSpace(max_layers=3, input_size=8, filters=(4, 8), fc_units=(16,)),
    spaces.CellSpace(max_blocks=2, channels=4, stages=2),
    spaces.NASBench201Space(),
]


@pytest.mark.parametrize("space", SMALL_SPACES, ids=lambda s: s.name)
def test_three_trials_complete_for_each_space(space, digits):
    objective = objectives.ImageClassification(space, digits, epochs=1, batch_size=256)
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=3)
    assert objective.directions == ["maximize", "minimize", "minimize"]
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        accuracy, params, flops = trial.values
        assert 0.0 <= accuracy <= 1.0
        attrs = trial.user_attrs
        assert attrs["params"] == params > 0
        assert attrs["flops"] == flops == 2 * attrs["macs"]
        assert space.spec_from_params(trial.params).spec_hash == attrs["spec_hash"]
        assert spaces.spec_from_dict(attrs["spec"]).spec_hash == attrs["spec_hash"]
        assert len(attrs["val_accuracy_curve"]) == 1
        assert attrs["val_accuracy_curve"][-1] == accuracy
        assert 0.0 <= attrs["test_accuracy"] <= 1.0
        assert attrs["train_seconds"] > 0


def test_training_learns(digits):
    space = spaces.ChainSpace(max_layers=2, input_size=8)
    objective = objectives.ImageClassification(space, digits, epochs=5, objectives=("accuracy",))
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(
        {
            "layer_0/type": "conv",
            "layer_0/kernel": 3,
            "layer_0/filters": 32,
            "layer_0/stride": 1,
            "layer_1/type/no_fc": "max_pool",
        }
    )
    study.optimize(objective, n_trials=1)
    assert study.best_value > 0.9


def test_same_seed_same_result(digits):
    space = spaces.ChainSpace(max_layers=3, input_size=8, filters=(4, 8))
    values = []
    for _ in range(2):
        objective = objectives.ImageClassification(space, digits, epochs=1, seed=5)
        study = optuna.create_study(directions=objective.directions, sampler=optuna.samplers.RandomSampler(seed=3))
        study.optimize(objective, n_trials=2)
        values.append([t.values for t in study.trials])
    assert values[0] == values[1]


def test_single_objective_reports_every_epoch_so_pruners_work(digits):
    class PruneAfterSecondReport(optuna.pruners.BasePruner):
        def prune(self, study, trial):
            return len(trial.intermediate_values) >= 2

    objective = objectives.ImageClassification(SMALL_SPACES[0], digits, epochs=3, objectives=("accuracy",))
    assert objective.directions == ["maximize"]
    study = optuna.create_study(direction="maximize", pruner=PruneAfterSecondReport())
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [1, 2]
    assert "after epoch 2" in trial.user_attrs["pruned_reason"]


def test_metaqnn_penalize_threshold_stops_and_prunes(digits):
    objective = objectives.ImageClassification(SMALL_SPACES[0], digits, epochs=3, early_stop_thresholds={1: 1.0})
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=2)
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.PRUNED
        assert "after epoch 1" in trial.user_attrs["pruned_reason"]
        assert len(trial.user_attrs["val_accuracy_curve"]) == 1


def test_non_finite_loss_prunes_with_the_reason(digits, monkeypatch):
    def exploding_epoch(*args, **kwargs):
        raise _training.NonFiniteLossError("training loss became nan")

    monkeypatch.setattr(_training, "train_epoch", exploding_epoch)
    objective = objectives.ImageClassification(SMALL_SPACES[0], digits, epochs=1)
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=2)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    assert "nan" in study.trials[0].user_attrs["pruned_reason"]


def test_huge_learning_rate_is_caught_as_non_finite(digits):
    space = spaces.ChainSpace(max_layers=2, input_size=8, fc_units=(64,), max_fc_input_size=8)
    objective = objectives.ImageClassification(space, digits, epochs=1, learning_rate=1e30, optimizer="sgd")
    study = optuna.create_study(directions=objective.directions)
    study.enqueue_trial({"layer_0/type": "fc", "layer_0/units": 64, "layer_1/type/no_conv_pool": "fc"})
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert "loss became" in trial.user_attrs["pruned_reason"]


def test_out_of_memory_fails_only_its_trial(digits, monkeypatch):
    calls = {"n": 0}
    real_train = _training.train

    def train_once_out_of_memory(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_train(*args, **kwargs)

    monkeypatch.setattr(_training, "train", train_once_out_of_memory)
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    objective = objectives.ImageClassification(SMALL_SPACES[0], digits, epochs=1)
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=2)
    first, second = study.trials
    assert first.state == optuna.trial.TrialState.FAIL
    assert "out of memory" in first.user_attrs["fail_reason"]
    assert second.state == optuna.trial.TrialState.COMPLETE


def test_latency_can_be_a_fourth_objective(digits):
    objective = objectives.ImageClassification(
        SMALL_SPACES[0], digits, epochs=1, objectives=("accuracy", "params", "flops", "latency")
    )
    assert objective.directions == ["maximize", "minimize", "minimize", "minimize"]
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=1)
    assert study.trials[0].values[3] == study.trials[0].user_attrs["latency_ms"] > 0


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"epochs": -1}, "epochs.*-1"),
        ({"epochs": 0}, "epochs.*0"),
        ({"batch_size": 0}, "batch_size"),
        ({"learning_rate": -0.1}, "learning_rate"),
        ({"optimizer": "lbfgs"}, "optimizer.*lbfgs"),
        ({"objectives": ("accuracy", "energy")}, "objectives.*energy"),
        ({"objectives": ()}, "objectives"),
        ({"early_stop_thresholds": {5: 0.5}}, "early_stop_thresholds"),
        ({"device": "tpu"}, "device.*tpu"),
        ({"dataset": "imagenet"}, "dataset.*imagenet"),
        ({"space": "chain"}, "space"),
        ({"max_params": 0}, "max_params.*0"),
        ({"max_flops": -5}, "max_flops.*-5"),
        ({"train_infeasible": "yes"}, "train_infeasible.*yes"),
    ],
)
def test_bad_arguments_fail_before_any_training(kwargs, match, digits):
    arguments = {"space": SMALL_SPACES[0], "dataset": digits, **kwargs}
    with pytest.raises(ValueError, match=match):
        objectives.ImageClassification(arguments.pop("space"), arguments.pop("dataset"), **arguments)


def _six_architectures(study):
    for filters, kernel, _units in [(4, 1, 16), (8, 3, 16), (4, 3, 16), (8, 1, 16), (4, 5, 16), (8, 5, 16)]:
        study.enqueue_trial(
            {
                "layer_0/type": "conv",
                "layer_0/kernel": kernel,
                "layer_0/filters": filters,
                "layer_0/stride": 1,
                "layer_1/type": "stop",
            }
        )


def test_networks_trained_in_threads_match_their_sequential_builds(digits):
    """Three threads, and a fourth that keeps reseeding torch's global generator as other code in
    the process may: every network is the one built and trained alone."""
    import threading

    space = spaces.ChainSpace(max_layers=2, input_size=8, filters=(4, 8), fc_units=(16,))
    results = []
    for n_jobs in (1, 3):
        stop = threading.Event()

        def reseed_forever(stop=stop):
            seed = 0
            while not stop.is_set():
                seed += 1
                torch.manual_seed(seed)
                torch.rand(1)

        noise = threading.Thread(target=reseed_forever) if n_jobs > 1 else None
        if noise is not None:
            noise.start()
        try:
            objective = objectives.ImageClassification(space, digits, epochs=1, batch_size=256)
            study = optuna.create_study(directions=objective.directions)
            _six_architectures(study)
            study.optimize(objective, n_trials=6, n_jobs=n_jobs)
        finally:
            stop.set()
            if noise is not None:
                noise.join()
        results.append({t.number: (t.params, t.values, t.user_attrs["train_loss_curve"]) for t in study.trials})
    assert results[0] == results[1]


def test_initial_weights_come_from_the_seed_not_the_global_generator():
    from optuna_nas.models import build_model
    from optuna_nas.models import initialize_parameters

    spec = spaces.ChainSpace(max_layers=2, input_size=8).spec_from_params(
        {
            "layer_0/type": "conv",
            "layer_0/kernel": 3,
            "layer_0/filters": 16,
            "layer_0/stride": 1,
            "layer_1/type": "stop",
        }
    )
    weights = []
    for global_seed in (0, 1):
        torch.manual_seed(global_seed)
        model = initialize_parameters(build_model(spec, input_shape=(1, 8, 8), num_classes=10), seed=7)
        weights.append([p.detach().clone() for p in model.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*weights, strict=True))
    conv = weights[0][0]
    bound = 1.0 / (1 * 3 * 3) ** 0.5
    assert conv.abs().max() <= bound and conv.std() > bound / 4


def test_a_network_over_budget_is_pruned_untrained_with_its_constraints(digits):
    space = spaces.ChainSpace(max_layers=2, input_size=8, filters=(4, 8), fc_units=(16,))
    objective = objectives.ImageClassification(space, digits, epochs=1, batch_size=256, max_params=4000)
    study = optuna.create_study(directions=objective.directions)
    _six_architectures(study)
    study.optimize(objective, n_trials=6)
    for trial in study.trials:
        over = trial.user_attrs["params"] > 4000
        assert trial.constraints == {"params": trial.user_attrs["params"] - 4000}
        if over:
            assert trial.state == optuna.trial.TrialState.PRUNED
            assert "over budget" in trial.user_attrs["pruned_reason"]
            assert "train_seconds" not in trial.user_attrs
        else:
            assert trial.state == optuna.trial.TrialState.COMPLETE
    assert {t.state for t in study.trials} == {optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.COMPLETE}


def test_a_network_over_budget_is_trained_when_asked(digits):
    space = spaces.ChainSpace(max_layers=2, input_size=8, filters=(4, 8), fc_units=(16,))
    objective = objectives.ImageClassification(
        space, digits, epochs=1, batch_size=256, max_flops=1.0, train_infeasible=True
    )
    study = optuna.create_study(directions=objective.directions)
    _six_architectures(study)
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.COMPLETE
    assert trial.constraints["flops"] == trial.user_attrs["flops"] - 1.0 > 0
