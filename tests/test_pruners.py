import copy
import math
import pickle
import subprocess
import sys

import numpy as np
import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState
from optuna.trial import create_trial

from optuna_nas import objectives
from optuna_nas import spaces
from optuna_nas.pruners import LearningCurvePruner

EPOCHS = 6
WIDTH = IntDistribution(1, 8)


def curve(start: float, end: float, *, epochs: int = EPOCHS, noise: float = 0.0, seed: int = 0) -> list[float]:
    """A saturating learning curve from ``start`` to ``end``."""
    rng = np.random.default_rng(seed)
    steps = np.arange(epochs)
    values = end - (end - start) * np.exp(-steps / 1.5) + rng.normal(0.0, noise, epochs)
    return [float(v) for v in values]


def finished(values: list[float], *, width: int = 4) -> optuna.trial.FrozenTrial:
    """A complete trial with ``values`` as its curve (intermediate values) and its last value as its value."""
    return create_trial(
        value=values[-1],
        params={"width": width},
        distributions={"width": WIDTH},
        intermediate_values=dict(enumerate(values, start=1)),
    )


def running(values: list[float], *, width: int = 4) -> optuna.trial.FrozenTrial:
    return create_trial(
        state=TrialState.RUNNING,
        params={"width": width},
        distributions={"width": WIDTH},
        intermediate_values=dict(enumerate(values, start=1)),
    )


def history(study: optuna.Study, *, good: int = 4, bad: int = 4) -> None:
    """Good trials (wide, curves 0.80 -> 0.97) and bad ones (narrow, 0.40 -> 0.70), alternating."""
    for index in range(max(good, bad)):
        if index < good:
            study.add_trial(finished(curve(0.80, 0.97, noise=0.005, seed=index), width=8))
        if index < bad:
            study.add_trial(finished(curve(0.40, 0.70, noise=0.005, seed=100 + index), width=1))


def test_prunes_a_curve_like_the_bad_ones_and_keeps_one_like_the_best():
    study = optuna.create_study(direction="maximize")
    history(study)
    pruner = LearningCurvePruner(min_complete_trials=4, min_epochs=2)
    bad = running(curve(0.42, 0.71, seed=7)[:2], width=1)
    good = running(curve(0.81, 0.97, seed=8)[:2], width=8)
    assert pruner.prune(study, bad)
    assert not pruner.prune(study, good)
    verdict = pruner.judge(study, bad)
    assert verdict.prune and verdict.epochs == 2
    assert verdict.predicted is not None and verdict.predicted < 0.8
    assert verdict.best == pytest.approx(max(t.value for t in study.trials))
    assert "confidently short of" in verdict.reason


def test_a_curve_better_than_every_finished_one_is_kept():
    # A forest cannot predict above its targets; it predicts the gain still to come, so a curve
    # already above the best is predicted above it.
    study = optuna.create_study(direction="maximize")
    history(study)
    pruner = LearningCurvePruner(min_complete_trials=4, min_epochs=2, confidence=0.0)
    assert not pruner.prune(study, running([0.985, 0.99], width=8))


def test_minimised_objectives_are_mirrored():
    study = optuna.create_study(direction="minimize")
    for index in range(4):
        study.add_trial(finished([1 - v for v in curve(0.80, 0.97, seed=index)], width=8))
        study.add_trial(finished([1 - v for v in curve(0.40, 0.70, seed=10 + index)], width=1))
    pruner = LearningCurvePruner(min_complete_trials=4)
    assert pruner.prune(study, running([0.58, 0.45], width=1))
    assert not pruner.prune(study, running([0.19, 0.1], width=8))


def test_never_prunes_before_the_minimum_data():
    bad = running(curve(0.42, 0.71, seed=7)[:3], width=1)
    study = optuna.create_study(direction="maximize")
    history(study, good=2, bad=2)
    pruner = LearningCurvePruner(min_complete_trials=5, min_epochs=2)
    verdict = pruner.judge(study, bad)
    assert not verdict.prune and "4 complete trials" in verdict.reason
    history(study, good=1, bad=0)
    assert pruner.prune(study, bad)  # the fifth complete trial is all it lacked
    assert not LearningCurvePruner(min_complete_trials=5, min_epochs=4).prune(study, bad)
    # No trial ran longer than the judged one: at the last epoch there is nothing to save.
    assert not pruner.prune(study, running(curve(0.42, 0.71, seed=7), width=1))
    # Only complete trials count: pruned and failed ones teach nothing about final values.
    sparse = optuna.create_study(direction="maximize")
    history(sparse, good=2, bad=2)
    sparse.add_trial(create_trial(state=TrialState.PRUNED, intermediate_values={1: 0.1, 2: 0.1}))
    sparse.add_trial(create_trial(state=TrialState.FAIL))
    assert not pruner.prune(sparse, bad)


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("min_complete_trials", 1),
        ("min_complete_trials", 2.5),
        ("min_epochs", 0),
        ("confidence", -1.0),
        ("confidence", math.nan),
        ("use_architecture", "yes"),
        ("n_estimators", 0),
        ("seed", -1),
    ],
)
def test_refuses_bad_arguments(argument, value):
    with pytest.raises(ValueError, match=f"{argument} must .*{value!r}"):
        LearningCurvePruner(**{argument: value})


def test_judge_refuses_bad_requests():
    study = optuna.create_study(directions=["maximize", "minimize"])
    pruner = LearningCurvePruner()
    with pytest.raises(ValueError, match="objective must be an index in \\[0, 1\\], got 2"):
        pruner.judge(study, running([0.5]), curve_attr="val_accuracy_curve", objective=2)
    with pytest.raises(ValueError, match="single-objective studies"):
        pruner.prune(study, running([0.5]))
    with pytest.raises(ValueError, match="curve_attr must name"):
        pruner.judge(study, study.ask())


def test_same_decision_after_a_rebuild(tmp_path):
    storage = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(direction="maximize", storage=storage, study_name="curves")
    history(study, good=5, bad=5)
    study.add_trial(finished(curve(0.6, 0.85, seed=50), width=3))
    candidate = running(curve(0.62, 0.84, seed=51)[:3], width=3)
    first = LearningCurvePruner().judge(study, candidate)
    again = LearningCurvePruner().judge(optuna.load_study(study_name="curves", storage=storage), candidate)
    assert first == again
    assert first.predicted is not None


def test_bad_values_in_curves_are_skipped():
    study = optuna.create_study(direction="maximize")
    history(study)
    study.add_trial(finished([0.5, math.nan, 0.6, 0.6, 0.6, 0.6], width=2))
    study.add_trial(finished([0.5, math.inf, 0.6, 0.6, 0.6, 0.6], width=2))
    study.add_trial(create_trial(value=math.inf, intermediate_values={1: 0.5, 2: 0.5, 3: 0.5}))
    pruner = LearningCurvePruner(min_complete_trials=4)
    assert pruner.prune(study, running([0.41, 0.5], width=1))
    verdict = pruner.judge(study, running([0.41, math.nan], width=1))
    assert not verdict.prune and "not a finite number" in verdict.reason
    # The same with curves in a user attr, some of them malformed.
    attrs = optuna.create_study(directions=["maximize", "minimize"])
    for index in range(4):
        for start, end in ((0.8, 0.97), (0.4, 0.7)):
            values = curve(start, end, seed=index)
            attrs.add_trial(create_trial(values=[end, 1.0], user_attrs={"val_accuracy_curve": values}))
    attrs.add_trial(create_trial(values=[0.9, 1.0], user_attrs={"val_accuracy_curve": [0.5, None, "x", 0.9]}))
    attrs.add_trial(create_trial(values=[0.9, 1.0], user_attrs={"val_accuracy_curve": "0.5, 0.9"}))
    attrs.add_trial(create_trial(values=[0.9, 1.0]))
    candidate = create_trial(state=TrialState.RUNNING, user_attrs={"val_accuracy_curve": [0.41, 0.5]})
    assert pruner.judge(attrs, candidate, curve_attr="val_accuracy_curve").prune
    assert pruner.judge(attrs, candidate, curve_attr="val_accuracy_curve", objective=1).epochs == 2
    malformed = create_trial(state=TrialState.RUNNING, user_attrs={"val_accuracy_curve": [0.41, None]})
    assert not pruner.judge(attrs, malformed, curve_attr="val_accuracy_curve").prune


def test_works_with_optuna_optimize():
    def objective(trial: optuna.Trial) -> float:
        width = trial.suggest_int("width", 1, 8)
        values = curve(0.3 + 0.07 * width, 0.5 + 0.06 * width, noise=0.003, seed=trial.number)
        for epoch, value in enumerate(values, start=1):
            trial.report(value, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned()
        return values[-1]

    pruner = LearningCurvePruner(min_complete_trials=5, confidence=1.0)
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0), pruner=pruner)
    study.optimize(objective, n_trials=40)
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    complete = study.get_trials(states=(TrialState.COMPLETE,))
    assert len(pruned) >= 10
    assert all(len(t.intermediate_values) < EPOCHS for t in pruned)
    assert study.best_params["width"] == 8
    # What was pruned was a loser, or a tie within the curves' noise (0.003 per epoch).
    for trial in pruned:
        width = trial.params["width"]
        final = curve(0.3 + 0.07 * width, 0.5 + 0.06 * width, noise=0.003, seed=trial.number)[-1]
        assert final < study.best_value + 0.01
    assert len(complete) >= 5


def test_image_classification_prunes_a_multi_objective_study(digits):
    space = spaces.ChainSpace(max_layers=2, input_size=8, filters=(4,), fc_units=(16,))
    pruner = LearningCurvePruner(min_complete_trials=4, min_epochs=1)
    objective = objectives.ImageClassification(space, digits, epochs=2, batch_size=256, curve_pruner=pruner)
    study = optuna.create_study(directions=objective.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    for index in range(4):  # finished trials far better than any 1-epoch tiny network
        values = curve(0.99, 0.999, epochs=3, seed=index)
        study.add_trial(create_trial(values=[values[-1], 1e3, 1e4], user_attrs={"val_accuracy_curve": values}))
    study.optimize(objective, n_trials=1)
    trial = study.trials[-1]
    assert trial.state == TrialState.PRUNED
    assert len(trial.user_attrs["val_accuracy_curve"]) == 1
    assert trial.user_attrs["pruned_reason"].startswith("learning-curve pruner after epoch 1")
    # Against finished trials it cannot beat confidently, it trains to the end.
    keep = optuna.create_study(directions=objective.directions, sampler=optuna.samplers.RandomSampler(seed=0))
    for index in range(4):
        values = curve(0.05, 0.1, epochs=3, seed=index)
        keep.add_trial(create_trial(values=[values[-1], 1e3, 1e4], user_attrs={"val_accuracy_curve": values}))
    keep.optimize(objective, n_trials=1)
    assert keep.trials[-1].state == TrialState.COMPLETE
    assert len(keep.trials[-1].user_attrs["val_accuracy_curve"]) == 2


def test_image_classification_refuses_a_curve_pruner_it_cannot_feed(digits):
    space = spaces.ChainSpace(max_layers=2, input_size=8)
    with pytest.raises(ValueError, match="objectives must include 'accuracy', got \\['params'\\]"):
        objectives.ImageClassification(space, digits, objectives=("params",), curve_pruner=LearningCurvePruner())
    with pytest.raises(ValueError, match="curve_pruner must be a LearningCurvePruner or None, got 'median'"):
        objectives.ImageClassification(space, digits, curve_pruner="median")


def test_importing_the_pruners_imports_no_torch():
    code = "import sys, optuna_nas.pruners; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("clone", [copy.deepcopy, lambda pruner: pickle.loads(pickle.dumps(pruner))])
def test_a_copied_pruner_decides_as_the_original(clone):
    # An objective holding the pruner (ImageClassification(curve_pruner=...)) may be copied or pickled.
    study = optuna.create_study(direction="maximize")
    history(study)
    pruner = LearningCurvePruner(min_complete_trials=4, min_epochs=2)
    bad = running(curve(0.42, 0.71, seed=7)[:2], width=1)
    verdict = pruner.judge(study, bad)
    copied = clone(pruner)
    assert copied.judge(study, bad) == verdict and verdict.prune
    assert (copied.min_epochs, copied.confidence, copied.seed) == (2, 1.0, 0)


def test_a_forest_too_large_to_fit_is_refused():
    with pytest.raises(ValueError, match="n_estimators must be at most 100000"):
        LearningCurvePruner(n_estimators=10**10)
