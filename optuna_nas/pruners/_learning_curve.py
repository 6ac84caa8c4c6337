"""Baker et al.'s learning-curve prediction: stop a trial whose final accuracy is predicted to lose."""

from __future__ import annotations

import dataclasses
import math
import threading
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.pruners import BasePruner
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas._validation import check_bool
from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas.predictors import TreeEnsemble
from optuna_nas.predictors import VectorEncoder

#: The most trees a forest may have: more never finish a fit.
_MAX_TREES = 100_000

#: A complete trial as training data: the first epochs of its curve, its params, its final value.
_Row = tuple[list[float], Mapping[str, Any], float]


@dataclasses.dataclass(frozen=True)
class CurveVerdict:
    """What :meth:`LearningCurvePruner.judge` decided about one trial, and why.

    Values are in the objective's own units and direction (an accuracy is an accuracy).

    Attributes:
        prune: Whether the trial should stop.
        epochs: Values of the trial's curve the verdict read.
        reason: One line saying why, fit for a trial's ``pruned_reason``.
        predicted: Predicted final value, or ``None`` when no prediction was made.
        spread: The prediction's spread (standard deviation over the forest's trees), or ``None``.
        best: The best final value among the complete trials, or ``None``.
    """

    prune: bool
    epochs: int
    reason: str
    predicted: float | None = None
    spread: float | None = None
    best: float | None = None


@dataclasses.dataclass(frozen=True)
class _Fitted:
    encoder: VectorEncoder | None
    forest: TreeEnsemble


class LearningCurvePruner(BasePruner):
    """Predict a trial's final value from its first epochs and stop it when it confidently loses.

    Baker et al. 2017, "Accelerating neural architecture search using performance prediction"
    (https://arxiv.org/abs/1705.10823): after ``t`` epochs, a regressor reads the partial curve
    (its ``t`` values and their first differences) and the architecture (the trial's params as
    :func:`optuna_nas.predictors.architecture_features`), and predicts the final value. It is
    trained on the study's complete trials whose curves are longer than ``t``, one model per
    ``t``, and predicts the gain still to come after epoch ``t`` (so a curve better than every
    finished one may be predicted better still). The model is a random forest
    (:class:`optuna_nas.predictors.TreeEnsemble`, scikit-learn); its spread is the standard
    deviation of its trees. The trial is pruned when::

        predicted + confidence * spread < best   (maximised; mirrored when minimised)

    where ``best`` is the best final value of the complete trials. Nothing is decided before
    ``min_epochs`` values are in, nor while fewer than ``min_complete_trials`` complete trials
    have a longer curve with finite values (so the last epoch is never pruned: no trial ran longer).

    Storage is the truth: the training data are the complete trials' curves, final values and
    params, read from the study at each decision; a fitted forest is cached in memory, keyed by
    those data, so a pruner rebuilt on the same storage decides the same. Nothing is stored.

    Curves: in a single-objective study (:meth:`prune`, called by Optuna through
    ``trial.should_prune()``) the trial's intermediate values in step order, one per epoch as
    :class:`optuna_nas.objectives.ImageClassification` reports them, and the study's value. Optuna
    does not prune multi-objective studies; there :meth:`judge` reads a curve kept in a user attr
    (``curve_attr``) and one objective of the values, which is how ``ImageClassification(...,
    curve_pruner=...)`` uses it. A non-finite or non-numeric value in a finished trial's curve
    leaves that trial out; in the judged trial's curve it means no verdict (the trial goes on).

    Args:
        min_complete_trials: Complete trials with a longer curve needed before any prune.
        min_epochs: Curve values a trial must have before it can be pruned.
        confidence: ``k`` in ``predicted + k * spread < best``: larger prunes less and later.
            1.65 asks for a one-sided 95 % margin if the forest's spread were a Gaussian's.
        use_architecture: Read the trial's params as well as its curve.
        n_estimators: Trees in the forest.
        seed: Seed of the forest.

    Raises:
        ValueError: An argument is out of range; the message names it and shows the value.

    Example:
        >>> import optuna
        >>> from optuna_nas import objectives, spaces
        >>> space = spaces.ChainSpace(max_layers=3, input_size=8)
        >>> objective = objectives.ImageClassification(space, "digits", epochs=8, objectives=("accuracy",))
        >>> study = optuna.create_study(direction="maximize", pruner=LearningCurvePruner())  # doctest: +SKIP
        >>> study.optimize(objective, n_trials=20)  # doctest: +SKIP
    """

    def __init__(
        self,
        *,
        min_complete_trials: int = 5,
        min_epochs: int = 2,
        confidence: float = 1.0,
        use_architecture: bool = True,
        n_estimators: int = 100,
        seed: int = 0,
    ) -> None:
        self.min_complete_trials = check_int("min_complete_trials", min_complete_trials, minimum=2)
        self.min_epochs = check_int("min_epochs", min_epochs, minimum=1)
        self.confidence = check_number("confidence", confidence, low=0.0)
        self.use_architecture = check_bool("use_architecture", use_architecture)
        self.n_estimators = check_int("n_estimators", n_estimators, minimum=1, maximum=_MAX_TREES)
        self.seed = check_int("seed", seed, minimum=0)
        self._init_cache()

    def _init_cache(self) -> None:
        self._cache: dict[tuple[Any, ...], tuple[Any, _Fitted]] = {}
        self._lock = threading.Lock()

    # Pickling and copying (an objective holding the pruner may be copied): the fitted forests are a
    # cache of the study's trials, rebuilt on demand; the lock is new.

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for key in ("_cache", "_lock"):
            state.pop(key, None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._init_cache()

    def prune(self, study: optuna.Study, trial: FrozenTrial) -> bool:
        """Whether Optuna should prune ``trial``: :meth:`judge` on its intermediate values.

        Raises:
            ValueError: The study has several objectives (use :meth:`judge` with ``curve_attr``).
        """
        if len(study.directions) != 1:
            raise ValueError(
                f"LearningCurvePruner.prune serves single-objective studies, got {len(study.directions)} "
                "objectives: call judge(study, trial, curve_attr=..., objective=...) instead, as "
                "ImageClassification(curve_pruner=...) does."
            )
        return self.judge(study, trial).prune

    def judge(
        self,
        study: optuna.Study,
        trial: optuna.Trial | FrozenTrial,
        *,
        curve_attr: str | None = None,
        objective: int = 0,
    ) -> CurveVerdict:
        """Predict ``trial``'s final value of objective ``objective`` and say whether to stop it.

        Args:
            study: The study ``trial`` belongs to; its complete trials are the training data.
            trial: The trial to judge, running (``optuna.Trial``) or frozen.
            curve_attr: The user attr holding each trial's curve (a list, one value per epoch);
                ``None`` reads the intermediate values (a frozen trial only).
            objective: Index of the objective the curve predicts, in ``study.directions``.

        Raises:
            ValueError: ``objective`` is not an index of the study's objectives, or the curve is
                asked of a running trial's intermediate values.
        """
        directions = study.directions
        if isinstance(objective, bool) or not isinstance(objective, int) or not 0 <= objective < len(directions):
            raise ValueError(f"objective must be an index in [0, {len(directions) - 1}], got {objective!r}.")
        if curve_attr is None and not isinstance(trial, FrozenTrial):
            raise ValueError("curve_attr must name the user attr holding the curve when trial is running, got None.")
        sign = 1.0 if directions[objective] == optuna.study.StudyDirection.MAXIMIZE else -1.0
        curve = _read_curve(trial, curve_attr)
        epochs = 0 if curve is None else len(curve)
        if curve is None or any(not math.isfinite(value) for value in curve):
            return CurveVerdict(False, epochs, "the curve holds a value that is not a finite number")
        if epochs < self.min_epochs:
            return CurveVerdict(False, epochs, f"{epochs} epochs < min_epochs {self.min_epochs}")

        finished = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        rows = _training_rows(finished, curve_attr, objective, epochs)
        if len(rows) < self.min_complete_trials:
            lacking = f"{len(rows)} complete trials ran longer than {epochs} epochs < {self.min_complete_trials}"
            return CurveVerdict(False, epochs, lacking)
        finals = [sign * value for trial_ in finished if (value := _final(trial_, objective)) is not None]
        best = max(finals)
        fitted = self._fitted(rows, sign, curve_attr, objective, epochs)
        features = _features(sign * np.asarray(curve), trial.params, fitted.encoder)
        gain, spread = fitted.forest.predict(features[None, :])
        predicted = sign * curve[-1] + float(gain[0])
        prune = predicted + self.confidence * float(spread[0]) < best
        shown_predicted, shown_best = sign * predicted, sign * best
        relation = "confidently short of" if prune else "not confidently short of"
        reason = (
            f"learning-curve pruner after epoch {epochs}: predicted final {shown_predicted:.4f} "
            f"+- {float(spread[0]):.4f} {relation} the best {shown_best:.4f} (confidence {self.confidence:g})"
        )
        return CurveVerdict(prune, epochs, reason, shown_predicted, float(spread[0]), shown_best)

    def _fitted(
        self,
        rows: list[_Row],
        sign: float,
        curve_attr: str | None,
        objective: int,
        epochs: int,
    ) -> _Fitted:
        """The forest for ``epochs``-long prefixes, fitted on ``rows`` or taken from the cache."""
        slot = (curve_attr, objective, sign, epochs)
        data = tuple((tuple(prefix), tuple(sorted(params.items())), final) for prefix, params, final in rows)
        with self._lock:
            cached = self._cache.get(slot)
            if cached is not None and cached[0] == data:
                return cached[1]
            encoder = VectorEncoder().fit([params for _, params, _ in rows]) if self.use_architecture else None
            X = np.stack([_features(sign * np.asarray(prefix), params, encoder) for prefix, params, _ in rows])
            gains = [sign * (final - prefix[-1]) for prefix, _, final in rows]
            forest = TreeEnsemble(n_estimators=self.n_estimators, max_features=1.0, seed=self.seed).fit(X, gains)
            fitted = _Fitted(encoder, forest)
            self._cache[slot] = (data, fitted)
            return fitted


def _features(prefix: np.ndarray, params: Mapping[str, Any], encoder: VectorEncoder | None) -> np.ndarray:
    """The curve's values and first differences, then the architecture's features when encoded."""
    parts = [prefix, np.diff(prefix)]
    if encoder is not None:
        parts.append(encoder.encode(dict(params)))
    return np.concatenate(parts)


def _training_rows(finished: Sequence[FrozenTrial], curve_attr: str | None, objective: int, epochs: int) -> list[_Row]:
    """``(first epochs of the curve, params, final value)`` of each usable complete trial, in number order."""
    rows: list[_Row] = []
    for trial in sorted(finished, key=lambda t: t.number):
        curve, final = _read_curve(trial, curve_attr), _final(trial, objective)
        if curve is None or final is None or len(curve) <= epochs:
            continue
        prefix = curve[:epochs]
        if all(math.isfinite(value) for value in prefix):
            rows.append((prefix, trial.params, final))
    return rows


def _read_curve(trial: optuna.Trial | FrozenTrial, curve_attr: str | None) -> list[float] | None:
    """The trial's curve as floats (possibly non-finite), or ``None`` when it is not a list of numbers."""
    if curve_attr is None:
        assert isinstance(trial, FrozenTrial)
        values: Any = [value for _, value in sorted(trial.intermediate_values.items())]
    else:
        values = trial.user_attrs.get(curve_attr, [])
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        return None
    if not all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in values):
        return None
    return [float(value) for value in values]


def _final(trial: FrozenTrial, objective: int) -> float | None:
    values = trial.values
    if values is None or len(values) <= objective or not math.isfinite(values[objective]):
        return None
    return float(values[objective])
