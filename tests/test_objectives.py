import optuna
import pytest
import torch

from optuna_nas import objectives
from optuna_nas import spaces
from optuna_nas import training as _training

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
        ({"bn_recalibration_batches": -1}, "bn_recalibration_batches.*-1"),
        ({"bn_recalibration_batches": 2.5}, "bn_recalibration_batches.*2.5"),
        ({"progress_callbacks": print}, "progress_callbacks.*print"),
        ({"progress_callbacks": [None]}, "progress_callbacks.*None"),
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


def _two_batchnorm_network():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3),
        torch.nn.BatchNorm2d(4),
        torch.nn.ReLU(),
        torch.nn.Conv2d(4, 3, 3),
        torch.nn.BatchNorm2d(3, momentum=0.3),
        torch.nn.Flatten(),
        torch.nn.Linear(3 * 4 * 4, 10),
    )


@pytest.mark.parametrize("training", [False, True])
def test_recalibrated_statistics_are_those_of_the_batches_fed_and_nothing_else_changes(digits, training):
    model = _two_batchnorm_network()
    conv_a, bn_a, _, conv_b, bn_b = list(model)[:5]
    for bn in (bn_a, bn_b):  # stale averages, as after a short training
        bn.running_mean.fill_(5.0)
        bn.running_var.fill_(9.0)
    model.train(training)
    weights = {name: value.clone() for name, value in model.named_parameters()}
    images = digits.train_x[:150]
    _training.recalibrate_batchnorm(model, digits.train_x, batches=3, batch_size=50)

    with torch.no_grad():
        inputs_a = [conv_a(images[i : i + 50]) for i in range(0, 150, 50)]
        # The second layer sees the first normalised by each batch's own statistics (training mode).
        inputs_b = [
            conv_b(torch.relu(torch.nn.functional.batch_norm(x, None, None, bn_a.weight, bn_a.bias, training=True)))
            for x in inputs_a
        ]
    for bn, inputs in ((bn_a, inputs_a), (bn_b, inputs_b)):
        every = torch.cat(inputs)
        expected_mean = every.mean(dim=(0, 2, 3))
        # A cumulative average of the batches' unbiased variances, as torch's update_bn keeps.
        expected_var = torch.stack([x.var(dim=(0, 2, 3), unbiased=True) for x in inputs]).mean(dim=0)
        torch.testing.assert_close(bn.running_mean, expected_mean)
        torch.testing.assert_close(bn.running_var, expected_var)
        assert bn.num_batches_tracked.item() == 3
    assert (bn_a.momentum, bn_b.momentum) == (0.1, 0.3)
    assert model.training is training
    assert all(torch.equal(weights[name], value) for name, value in model.named_parameters())


def test_recalibration_leaves_a_network_without_batchnorm_alone(digits):
    calls = []
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    model.register_forward_hook(lambda *args: calls.append(1))
    before = {name: value.clone() for name, value in model.state_dict().items()}
    _training.recalibrate_batchnorm(model, digits.train_x, batches=4, batch_size=128)
    assert calls == []
    assert all(torch.equal(before[name], value) for name, value in model.state_dict().items())


def test_a_lagging_batchnorm_scores_higher_after_recalibration(digits):
    """Running averages that never moved (momentum 0), on inputs far from zero mean: the extreme of
    averages trailing the weights."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 8, 3, padding=1),
        torch.nn.BatchNorm2d(8, momentum=0.0),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(8 * 64, 10),
    )
    train_x, val_x = digits.train_x + 4.0, digits.val_x + 4.0
    settings = _training.TrainingSettings(epochs=3, bn_recalibration_batches=0)
    lagging = _training.train(model, train_x, digits.train_y, val_x, digits.val_y, settings, seed=0)[-1]
    _training.recalibrate_batchnorm(model, train_x, batches=4, batch_size=128)
    recalibrated = _training.evaluate(model, val_x, digits.val_y)
    assert lagging < 0.6 and recalibrated > 0.85


def _two_conv_chains(digits, **kwargs):
    space = spaces.ChainSpace(max_layers=2, input_size=8, filters=(4, 8), fc_units=(16,))
    objective = objectives.ImageClassification(space, digits, epochs=2, batch_size=256, **kwargs)
    study = optuna.create_study(directions=objective.directions)
    for kernel in (3, 5):
        study.enqueue_trial(
            {"layer_0/type": "conv", "layer_0/kernel": kernel, "layer_0/filters": 8, "layer_0/stride": 1}
            | {"layer_1/type": "stop"}
        )
    study.optimize(objective, n_trials=2)
    return space, study


def test_recalibration_changes_scores_not_training_and_off_reproduces_the_running_averages(digits):
    from optuna_nas.models import build_model
    from optuna_nas.models import initialize_parameters
    from optuna_nas.objectives._image_classification import _trial_seed

    space, recalibrated = _two_conv_chains(digits)
    _, plain = _two_conv_chains(digits, bn_recalibration_batches=0)
    for on, off in zip(recalibrated.trials, plain.trials, strict=True):
        # Recalibration touches only BatchNorm buffers, which training-mode passes do not read.
        assert on.user_attrs["train_loss_curve"] == off.user_attrs["train_loss_curve"]
        assert on.user_attrs["val_accuracy_curve"] != off.user_attrs["val_accuracy_curve"]

        # Off: the scores of the loop as it was, evaluation with the running averages.
        seed = _trial_seed(0, off.number)
        model = build_model(space.spec_from_params(off.params), input_shape=(1, 8, 8), num_classes=10)
        model = initialize_parameters(model, seed=seed)
        optimizer = _training.make_optimizer(model, _training.TrainingSettings())
        generator = torch.Generator().manual_seed(seed)
        curve = []
        for _ in range(2):
            _training.train_epoch(model, optimizer, digits.train_x, digits.train_y, batch_size=256, generator=generator)
            curve.append(_training.evaluate(model, digits.val_x, digits.val_y))
        assert off.user_attrs["val_accuracy_curve"] == curve


def test_progress_callbacks_see_each_epoch_begin_run_and_end(digits, monkeypatch):
    monkeypatch.setattr(_training, "BATCH_PROGRESS_SECONDS", 0.0)  # report after every batch
    seen = []
    objective = objectives.ImageClassification(
        SMALL_SPACES[0], digits, epochs=2, batch_size=256, progress_callbacks=[lambda t, p: seen.append((t.number, p))]
    )
    study = optuna.create_study(directions=objective.directions)
    study.optimize(objective, n_trials=2)
    batches = 5  # 1,222 training images
    for trial in study.trials:
        events = [p for number, p in seen if number == trial.number]
        expected = [(epoch, batch) for epoch in (1, 2) for batch in range(batches + 1)]
        assert [(p.epoch, p.batch) for p in events] == expected
        assert {(p.epochs, p.batches) for p in events} == {(2, batches)}
        ends = [p for p in events if p.epoch_end]
        assert [p.batch for p in ends] == [batches, batches]
        assert [p.metrics["val_accuracy"] for p in ends] == trial.user_attrs["val_accuracy_curve"]
        assert [p.metrics["train_loss"] for p in ends] == trial.user_attrs["train_loss_curve"]


def test_a_failing_progress_callback_warns_once_and_the_trials_are_unchanged(digits, caplog):
    def broken(trial, progress):
        raise RuntimeError("display gone")

    results = []
    for callbacks in ([], [broken]):
        objective = objectives.ImageClassification(
            SMALL_SPACES[0], digits, epochs=2, batch_size=256, progress_callbacks=callbacks
        )
        study = optuna.create_study(directions=objective.directions, sampler=optuna.samplers.RandomSampler(seed=0))
        study.optimize(objective, n_trials=2)
        assert {t.state for t in study.trials} == {optuna.trial.TrialState.COMPLETE}
        results.append([t.values for t in study.trials])
    assert results[0] == results[1]
    warnings = [r for r in caplog.records if "Progress callback" in r.getMessage()]
    assert len(warnings) == 1 and "display gone" in warnings[0].exc_text


def test_a_chain_space_made_for_other_images_is_refused_before_any_training():
    from optuna_nas import data

    digits = data.load("digits")  # 8x8 images
    with pytest.raises(ValueError, match=r"ChainSpace\(input_size=28\).*\(1, 8, 8\).*input_size=8"):
        objectives.ImageClassification(spaces.ChainSpace(max_layers=2), digits)
    objectives.ImageClassification(spaces.ChainSpace(max_layers=2, input_size=8), digits)
    objectives.ImageClassification(spaces.NASBench201Space(), digits)  # builders that adapt take any size


def test_a_dataset_that_is_not_one_is_refused_by_name():
    from optuna_nas import objectives as objectives_module
    from optuna_nas import spaces as spaces_module

    space = spaces_module.CellSpace(max_blocks=1, channels=4)
    for objective_type in (objectives_module.ImageClassification, objectives_module.SharedWeights):
        with pytest.raises(
            ValueError, match=r"dataset must be an optuna_nas\.data\.ImageDataset or a dataset.s name, got None"
        ):
            objective_type(space, None)


def test_nasbench201_multi_objective_must_be_a_bool():
    from optuna_nas import objectives as objectives_module

    with pytest.raises(ValueError, match="multi_objective must be True or False, got 'no'"):
        objectives_module.NASBench201(objectives_module.DEFAULT_TABLE, "cifar10", multi_objective="no")
