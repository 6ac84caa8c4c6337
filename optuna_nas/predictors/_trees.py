"""Tree ensembles from scikit-learn: random forests and gradient boosting."""

from __future__ import annotations

from typing import Any

import numpy as np

from optuna_nas._validation import check_int
from optuna_nas._validation import check_number
from optuna_nas._validation import check_one_of
from optuna_nas._validation import check_seed
from optuna_nas.predictors._base import MAX_MEMBERS
from optuna_nas.predictors._base import MAX_TREES
from optuna_nas.predictors._base import VectorPredictor
from optuna_nas.predictors._base import member_seed

TREE_MODELS = ("random_forest", "gradient_boosting")


class TreeEnsemble(VectorPredictor):
    """A random forest or an ensemble of gradient-boosted trees over architecture vectors.

    Tree ensembles rank architectures well without tuning (White et al., 2021, "How powerful are
    performance predictors in neural architecture search?", https://arxiv.org/abs/2104.01177).
    ``X`` is a 2-D array (:class:`VectorEncoder`). :meth:`update` refits on all data seen.

    - ``random_forest`` (the default): scikit-learn's ``RandomForestRegressor``; the spread is the
      standard deviation of its trees' predictions.
    - ``gradient_boosting``: ``ensemble_size`` of scikit-learn's ``GradientBoostingRegressor``, each
      with its own seed and a random 80 % of the samples per tree; the mean and the spread are over
      the members.

    Args:
        model: ``random_forest`` or ``gradient_boosting``.
        n_estimators: Trees per forest, or boosting rounds per member.
        max_features: Share of the features each split considers, in (0, 1]; ``None``: 0.3 for a
            forest, all for boosting.
        max_depth: Depth of each tree; ``None``: forest trees grow fully, boosted trees to depth 3.
        ensemble_size: Boosted members (``gradient_boosting`` only; ``None``: 5).
        learning_rate: Shrinkage of each boosting round (``gradient_boosting`` only; ``None``: 0.05).
        seed: Seed of the bootstrap, the feature draws and the members; ``None`` draws one.

    Raises:
        ValueError: An argument is out of range, or a boosting argument is given for a forest; the
            message names it.

    Example:
        >>> import numpy as np
        >>> X = np.array([[0.0], [1.0], [2.0], [3.0]])
        >>> forest = TreeEnsemble(n_estimators=20, seed=0).fit(X, [0.1, 0.2, 0.5, 0.6])
        >>> mean, spread = forest.predict(X)
        >>> bool(mean[0] < mean[3]), mean.shape, spread.shape
        (True, (4,), (4,))
    """

    def __init__(
        self,
        *,
        model: str = "random_forest",
        n_estimators: int = 300,
        max_features: float | None = None,
        max_depth: int | None = None,
        ensemble_size: int | None = None,
        learning_rate: float | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        self.model = check_one_of("model", model, TREE_MODELS)
        boosting = model == "gradient_boosting"
        for name, value in (("ensemble_size", ensemble_size), ("learning_rate", learning_rate)):
            if value is not None and not boosting:
                raise ValueError(f"{name} applies to model='gradient_boosting' only, got {name}={value!r}.")
        self.n_estimators = check_int("n_estimators", n_estimators, minimum=1, maximum=MAX_TREES)
        if max_features is None:
            max_features = 1.0 if boosting else 0.3
        self.max_features = check_number("max_features", max_features, low=0.0, high=1.0, low_open=True)
        if max_depth is None and boosting:
            max_depth = 3
        self.max_depth = None if max_depth is None else check_int("max_depth", max_depth, minimum=1)
        self.ensemble_size = check_int(
            "ensemble_size", 5 if ensemble_size is None else ensemble_size, minimum=2, maximum=MAX_MEMBERS
        )
        self.learning_rate = check_number(
            "learning_rate", 0.05 if learning_rate is None else learning_rate, low=0.0, low_open=True
        )
        self.seed = check_seed(seed)
        self._members: list[Any] = []

    def _fit(self, inputs: np.ndarray, targets: np.ndarray) -> None:
        from sklearn.ensemble import GradientBoostingRegressor
        from sklearn.ensemble import RandomForestRegressor

        if self.model == "random_forest":
            forest = RandomForestRegressor(
                n_estimators=self.n_estimators,
                max_features=self.max_features,
                max_depth=self.max_depth,
                random_state=self.seed,
                n_jobs=1,
            )
            self._members = [forest.fit(inputs, targets)]
            return
        self._members = [
            GradientBoostingRegressor(
                n_estimators=self.n_estimators,
                learning_rate=self.learning_rate,
                max_depth=self.max_depth,
                max_features=self.max_features,
                subsample=0.8,
                random_state=member_seed(self.seed, member),
            ).fit(inputs, targets)
            for member in range(self.ensemble_size)
        ]

    def _predict(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.model == "random_forest":
            forest = self._members[0]
            per_tree = np.stack([tree.predict(inputs) for tree in forest.estimators_])
            return forest.predict(inputs), per_tree.std(axis=0)
        per_member = np.stack([member.predict(inputs) for member in self._members])
        return per_member.mean(axis=0), per_member.std(axis=0)
