"""Pareto fronts of NAS studies: the trials, their hypervolume, and plots."""

from __future__ import annotations

import os
from collections.abc import Sequence

import optuna
from optuna.trial import FrozenTrial

from optuna_nas.analysis._hypervolume import hypervolume_of_points


def metric_names(study: optuna.Study) -> list[str]:
    """The study's metric names, or ``value_0``, ``value_1``, ... when none were set."""
    names = study.metric_names
    return list(names) if names else [f"value_{i}" for i in range(len(study.directions))]


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """The non-dominated complete trials, best first by the first objective."""
    if len(study.directions) == 1:
        return [study.best_trial] if any(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials) else []
    sign = -1.0 if study.directions[0] == optuna.study.StudyDirection.MAXIMIZE else 1.0
    return sorted(study.best_trials, key=lambda t: (sign * t.values[0], t.number))


def _directions(study: optuna.Study) -> list[str]:
    return ["maximize" if d == optuna.study.StudyDirection.MAXIMIZE else "minimize" for d in study.directions]


def default_reference(study: optuna.Study) -> list[float]:
    """A reference point every complete trial improves on: 0 for maximised objectives (accuracy),
    1.1 x the largest value seen for minimised ones (params, FLOPs).
    """
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    reference = []
    for i, direction in enumerate(_directions(study)):
        if direction == "maximize":
            reference.append(0.0)
        else:
            reference.append(1.1 * max((t.values[i] for t in complete), default=1.0))
    return reference


def hypervolume(study: optuna.Study, reference: Sequence[float] | None = None) -> float:
    """Hypervolume of the study's complete trials against ``reference`` (default:
    :func:`default_reference`).

    Raises:
        ValueError: ``reference`` does not have one value per objective.
    """
    reference = list(reference) if reference is not None else default_reference(study)
    points = [t.values for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    return hypervolume_of_points(points, reference, _directions(study))


def plot_pareto(
    study: optuna.Study, *, x: str = "params", y: str = "accuracy", out_dir: str | None = None
) -> dict[str, str]:
    """Plot metric ``y`` against metric ``x`` for every complete trial, the front highlighted.

    Writes ``pareto_<y>_vs_<x>.png`` (matplotlib) and ``.html`` (plotly, interactive) into
    ``out_dir`` (default: the working folder) and returns their paths.

    Raises:
        ValueError: ``x`` or ``y`` is not one of the study's metric names.
    """
    names = metric_names(study)
    for argument, value in (("x", x), ("y", y)):
        if value not in names:
            raise ValueError(f"{argument} must be one of the study's metrics {names}, got {value!r}.")
    ix, iy = names.index(x), names.index(y)
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    front_numbers = {t.number for t in pareto_front(study)}
    out_dir = out_dir or "."
    os.makedirs(out_dir, exist_ok=True)
    stem = os.path.join(out_dir, f"pareto_{y}_vs_{x}")

    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4.2), dpi=110)
    axes = figure.add_subplot()
    rest = [t for t in complete if t.number not in front_numbers]
    front = sorted((t for t in complete if t.number in front_numbers), key=lambda t: t.values[ix])
    axes.scatter([t.values[ix] for t in rest], [t.values[iy] for t in rest], s=18, c="#9aa0a6", label="trials")
    axes.plot(
        [t.values[ix] for t in front], [t.values[iy] for t in front], "o-", c="#d93025", ms=5, label="Pareto front"
    )
    if x in ("params", "flops", "macs"):
        axes.set_xscale("log")
    axes.set_xlabel(x)
    axes.set_ylabel(y)
    axes.set_title(f"{study.study_name}: {y} vs {x}")
    axes.legend()
    figure.tight_layout()
    figure.savefig(stem + ".png")

    import plotly.graph_objects as go

    fig = go.Figure()
    for group, color, name in ((rest, "#9aa0a6", "trials"), (front, "#d93025", "Pareto front")):
        fig.add_trace(
            go.Scatter(
                x=[t.values[ix] for t in group],
                y=[t.values[iy] for t in group],
                mode="markers",
                marker={"color": color},
                name=name,
                text=[f"trial {t.number}<br>{t.user_attrs.get('spec_hash', '')}" for t in group],
            )
        )
    fig.update_layout(
        title=f"{study.study_name}: {y} vs {x}",
        xaxis_title=x,
        yaxis_title=y,
        xaxis_type="log" if x in ("params", "flops", "macs") else "linear",
    )
    fig.write_html(stem + ".html", include_plotlyjs=True)
    return {"png": stem + ".png", "html": stem + ".html"}
