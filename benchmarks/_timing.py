"""A sampler wrapper that adds up the time spent inside the sampler it wraps."""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.samplers import BaseSampler


class TimedSampler(BaseSampler):
    """Delegates every call to ``inner`` and adds its duration to ``seconds``."""

    def __init__(self, inner: BaseSampler) -> None:
        self.inner = inner
        self.seconds = 0.0

    def _timed(self, method: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return getattr(self.inner, method)(*args)
        finally:
            self.seconds += time.perf_counter() - start

    def __getattr__(self, name: str) -> Any:
        # Attributes beyond the sampler interface (``avoid_duplicates``, ``architecture_holders``)
        # are the inner sampler's, untimed: they are called from the objective.
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)

    def reseed_rng(self) -> None:
        self.inner.reseed_rng()

    def infer_relative_search_space(self, study, trial):
        return self._timed("infer_relative_search_space", study, trial)

    def sample_relative(self, study, trial, search_space):
        return self._timed("sample_relative", study, trial, search_space)

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self._timed("sample_independent", study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self._timed("before_trial", study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self._timed("after_trial", study, trial, state, values)
