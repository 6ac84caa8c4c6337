"""What ``optuna-nas search`` shows while it runs: a bar of trials, and a line of the trials training."""

from __future__ import annotations

import shutil
import threading
from typing import Any

import optuna


class SearchProgress:
    """A bar over the trials (best accuracy, Pareto-front size) and, under it, the trials in training.

    The second line names every trial training at the moment, as ``trial 12 epoch 2/3 batch 17/36``
    while an epoch runs and ``trial 12 epoch 2/3 val_accuracy 0.9123`` once it is evaluated, so a
    long trial shows that it moves. :meth:`trial_finished` is the study callback,
    :meth:`training` the objective's progress callback; both run in the trials' threads.
    """

    def __init__(self, study: optuna.Study, n_trials: int) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=n_trials, desc=study.study_name, unit="trial")
        self._line = tqdm(total=0, bar_format="{desc}", leave=False)
        self._running: dict[int, str] = {}
        self._lock = threading.Lock()

    def training(self, trial: optuna.Trial, progress: Any) -> None:
        """Show where ``trial``'s training stands (a :class:`~optuna_nas.objectives.TrainingProgress`)."""
        where = f"trial {trial.number} epoch {progress.epoch}/{progress.epochs}"
        if "val_accuracy" in progress.metrics:
            where += f" val_accuracy {progress.metrics['val_accuracy']:.4f}"
        else:
            where += f" batch {progress.batch}/{progress.batches}"
        with self._lock:
            self._running[trial.number] = where
            self._show_running()

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        from optuna_nas.analysis import pareto_front

        complete = [t for t in study.get_trials(deepcopy=False) if t.state.name == "COMPLETE"]
        best = max((t.values[0] for t in complete), default=float("nan"))
        front = len(pareto_front(study))
        with self._lock:
            self._running.pop(trial.number, None)
            self._show_running()
            self._bar.set_postfix(best_accuracy=f"{best:.4f}", pareto=front, refresh=False)
            self._bar.update(1)

    def close(self) -> None:
        with self._lock:
            self._line.close()
            self._bar.close()

    def _show_running(self) -> None:
        text = " | ".join(self._running[number] for number in sorted(self._running))
        # One line, however many trials run: a wrapped line would break the bar's redrawing.
        width = shutil.get_terminal_size().columns - 1
        if len(text) > width:
            text = text[: max(0, width - 3)] + "..."
        self._line.set_description_str(text, refresh=True)
