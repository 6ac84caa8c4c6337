"""MLflow tracking: one run per trial, nested under one parent run per study."""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import optuna
from optuna.trial import FrozenTrial
from optuna.trial import TrialState

from optuna_nas._secrets import mask_secrets
from optuna_nas._secrets import mask_url

_logger = logging.getLogger(__name__)

PARENT_TAG = "optuna_nas.parent_run_id"
_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "KILLED", TrialState.FAIL: "FAILED"}
_CURVES = {"val_accuracy_curve": "val_accuracy", "train_loss_curve": "train_loss"}


class MLflowTracker:
    """An Optuna callback that records every finished trial in MLflow.

    Each study is an MLflow experiment of the same name holding one parent run; each trial is a
    child run of it (tag ``mlflow.parentRunId``) named ``trial-<number>``, with the trial's
    params, every objective value under its metric name, the per-epoch ``train_loss`` and
    ``val_accuracy`` histories (from the trial's ``train_loss_curve`` / ``val_accuracy_curve`` user
    attrs), the other numeric user attrs as metrics, the architecture as ``spec.json`` and a picture
    of it as ``network.png``. A pruned trial's run ends ``KILLED``, a failed one's ``FAILED``, with
    tag ``optuna.trial_state``.

    To watch trials while they train, give :meth:`log_progress` to the objective as well
    (``ImageClassification(..., progress_callbacks=[tracker.log_progress])``): the trial's run is
    then made as its training begins (tag ``optuna.trial_state`` ``RUNNING``) and every epoch's
    ``train_loss`` and ``val_accuracy`` are logged as soon as the epoch is evaluated. When the trial
    ends, the callback completes that same run (found by the trial's number) rather than making
    another.

    It uses explicit run ids (``MlflowClient``) rather than MLflow's thread-local active run, so it
    is safe with ``n_jobs > 1``; several processes share one parent run: the process that creates
    the experiment creates the parent run and tags the experiment with its id, the others wait for
    the tag. optuna-integration's ``MLflowCallback`` logs flat runs through the active-run API,
    which is why this callback does not build on it.

    If the tracking store cannot be reached, one warning is logged and the study goes on
    untracked.

    Args:
        tracking_uri: Any MLflow tracking URI; default ``sqlite:///mlflow.db`` in the working folder.
        experiment_name: Default: the study's name.
    """

    def __init__(self, *, tracking_uri: str | None = None, experiment_name: str | None = None) -> None:
        self.tracking_uri = tracking_uri or "sqlite:///mlflow.db"
        self.experiment_name = experiment_name
        self._lock = threading.Lock()
        self._client: Any = None
        self._parents: dict[str, str] = {}
        self._experiments: dict[str, str] = {}  # parent run id -> experiment id
        self._trial_runs: dict[tuple[str, int], str] = {}  # (parent run id, trial number) -> run id
        self._logged_steps: dict[str, set[tuple[str, int]]] = {}  # run id -> (metric, step) already logged
        self._disabled = False

    # -- public ---------------------------------------------------------------------------------

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._guarded(self._log_trial, study, trial)

    def log_progress(self, trial: optuna.Trial, progress: Any) -> None:
        """Stream a running trial to its MLflow run (a progress callback for the training objective).

        Pass it in :class:`~optuna_nas.objectives.ImageClassification`'s ``progress_callbacks``. It
        makes the trial's run on the first call and logs the metrics of ``progress`` (a
        :class:`~optuna_nas.objectives.TrainingProgress`: ``train_loss`` and ``val_accuracy`` once
        an epoch is evaluated) at step ``progress.epoch``.
        """
        self._guarded(self._log_progress, trial, progress)

    def parent_run_id(self, study: optuna.Study) -> str | None:
        """The study's parent run id (created if needed), or ``None`` when tracking is off."""
        run_id: str | None = self._guarded(self._parent, study)
        return run_id

    def end_study(self, study: optuna.Study) -> None:
        """Mark the study's parent run finished (a later resume marks it running again)."""

        def end() -> None:
            self._client_or_connect().set_terminated(self._parent(study), "FINISHED")

        self._guarded(end)

    # -- internals ------------------------------------------------------------------------------

    def _guarded(self, function: Any, *args: Any) -> Any:
        if self._disabled:
            return None
        try:
            return function(*args)
        except Exception as error:  # noqa: BLE001 - tracking must never end the study
            with self._lock:
                if not self._disabled:
                    self._disabled = True
                    _logger.warning(
                        "MLflow tracking at %s is off for the rest of this run: %s",
                        mask_url(self.tracking_uri),
                        mask_secrets(
                            str(error).splitlines()[0] if str(error) else type(error).__name__, self.tracking_uri
                        ),
                    )
            return None

    def _client_or_connect(self) -> Any:
        with self._lock:
            if self._client is None:
                from mlflow.tracking import MlflowClient

                if self.tracking_uri.startswith(("http://", "https://")):
                    _check_server(self.tracking_uri)
                client = MlflowClient(tracking_uri=self.tracking_uri)
                # A first contact creates a local store's tables; processes starting together
                # may race on that, so try a few times.
                for attempt in range(5):
                    try:
                        client.search_experiments(max_results=1)
                        break
                    except Exception:
                        if attempt == 4:
                            raise
                        time.sleep(0.5 * (attempt + 1))
                self._client = client
            return self._client

    def _experiment_id(self, client: Any, name: str) -> tuple[str, bool]:
        """The experiment's id, and whether this call created it."""
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            return experiment.experiment_id, False
        try:
            return client.create_experiment(name), True
        except Exception:
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
            return experiment.experiment_id, False

    def _parent(self, study: optuna.Study) -> str:
        name = self.experiment_name or study.study_name
        with self._lock:
            if name in self._parents:
                return self._parents[name]
        client = self._client_or_connect()
        experiment_id, created = self._experiment_id(client, name)
        run_id = None
        if created:
            run_id = self._new_parent(client, experiment_id, study)
        else:
            for _ in range(60):  # the creating process tags the parent within moments
                run_id = client.get_experiment(experiment_id).tags.get(PARENT_TAG)
                if run_id:
                    break
                time.sleep(0.5)
            if not run_id:
                run_id = self._new_parent(client, experiment_id, study)
        client.update_run(run_id, status="RUNNING")
        with self._lock:
            self._parents[name] = run_id
        return run_id

    def _new_parent(self, client: Any, experiment_id: str, study: optuna.Study) -> str:
        directions = [d.name.lower() for d in study.directions]
        run = client.create_run(
            experiment_id,
            run_name=f"study-{study.study_name}",
            tags={"optuna.study_name": study.study_name, "optuna.directions": ",".join(directions)},
        )
        client.set_experiment_tag(experiment_id, PARENT_TAG, run.info.run_id)
        return str(run.info.run_id)

    def _trial_run(self, study: optuna.Study, number: int, state: str) -> str:
        """The run of trial ``number``: the one already made for it, else a new one tagged ``state``."""
        parent = self._parent(study)
        key = (parent, number)
        with self._lock:
            if key in self._trial_runs:
                return self._trial_runs[key]
        client = self._client_or_connect()
        with self._lock:
            experiment_id = self._experiments.get(parent)
        if experiment_id is None:
            experiment_id = client.get_run(parent).info.experiment_id
            with self._lock:
                self._experiments[parent] = experiment_id
        # Another tracker object in this process may have streamed the trial: one run per trial.
        found = client.search_runs(
            [experiment_id],
            filter_string=f"tags.`mlflow.parentRunId` = '{parent}' and tags.`optuna.trial_number` = '{number}'",
            max_results=1,
        )
        if found:
            run_id = str(found[0].info.run_id)
            logged = {
                (metric, m.step) for metric in _CURVES.values() for m in client.get_metric_history(run_id, metric)
            }
        else:
            run = client.create_run(
                experiment_id,
                run_name=f"trial-{number}",
                tags={
                    "mlflow.parentRunId": parent,
                    "optuna.trial_number": str(number),
                    "optuna.trial_state": state,
                    "optuna.study_name": study.study_name,
                },
            )
            run_id, logged = str(run.info.run_id), set()
        with self._lock:
            self._trial_runs[key] = run_id
            self._logged_steps[run_id] = logged
        return run_id

    def _log_progress(self, trial: optuna.Trial, progress: Any) -> None:
        from mlflow.entities import Metric

        run_id = self._trial_run(trial.study, trial.number, "RUNNING")
        if not progress.metrics:
            return
        now = int(time.time() * 1000)
        metrics = [Metric(name, float(value), now, progress.epoch) for name, value in progress.metrics.items()]
        self._client_or_connect().log_batch(run_id, metrics=metrics)
        with self._lock:
            self._logged_steps[run_id].update((m.key, m.step) for m in metrics)

    def _log_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        from mlflow.entities import Metric
        from mlflow.entities import Param
        from mlflow.entities import RunTag

        client = self._client_or_connect()
        parent = self._parent(study)
        run_id = self._trial_run(study, trial.number, trial.state.name)
        with self._lock:
            streamed = self._logged_steps.pop(run_id, set())
            self._trial_runs.pop((parent, trial.number), None)
        now = int(time.time() * 1000)
        names = study.metric_names or [f"value_{i}" for i in range(len(study.directions))]
        metrics = []
        if trial.values is not None:
            metrics += [Metric(name, float(v), now, 0) for name, v in zip(names, trial.values, strict=False)]
        for attr, metric in _CURVES.items():
            for epoch, value in enumerate(trial.user_attrs.get(attr, []), start=1):
                if (metric, epoch) not in streamed:
                    metrics.append(Metric(metric, float(value), now, epoch))
        for key, value in trial.user_attrs.items():
            if key not in _CURVES and isinstance(value, (int, float)) and not isinstance(value, bool):
                metrics.append(Metric(key, float(value), now, 0))
        params = [Param(k, str(v)[:500]) for k, v in trial.params.items()]
        tags = [RunTag(f"user_attr.{k}", str(v)[:5000]) for k, v in trial.user_attrs.items() if isinstance(v, str)]
        tags.append(RunTag("optuna.trial_state", trial.state.name))
        client.log_batch(run_id, metrics=metrics, params=params, tags=tags)
        spec = trial.user_attrs.get("spec")
        if spec is not None:
            from optuna_nas.analysis import draw_architecture

            client.log_text(run_id, json.dumps(spec, indent=2), "spec.json")
            try:
                figure = draw_architecture(spec)
            except Exception:  # noqa: BLE001 - an unregistered spec type or a faulty graph(): the JSON is logged
                _logger.warning("Trial %d: no network.png in MLflow, its spec could not be drawn.", trial.number)
                figure = None
            if figure is not None:
                client.log_figure(run_id, figure, "network.png")
        client.set_terminated(run_id, _STATUS.get(trial.state, "FAILED"))


def _check_server(uri: str) -> None:
    """Fail fast when a tracking server does not answer (MLflow's own client retries for minutes)."""
    import requests

    response = requests.get(uri.rstrip("/") + "/health", timeout=3)
    response.raise_for_status()
