"""The mark a trial carries once every architecture decision of it is taken.

A search space sets it at the end of ``space.suggest(trial)``; any objective may set it with
:func:`optuna_nas.samplers.mark_decided`. Samplers read it: a running trial that carries it is an
architecture under evaluation (no other worker should start the same one), and a pruned or failed
trial without it may have been cut short before its architecture was whole.
"""

from __future__ import annotations

from typing import Any

DECIDED_KEY = "optuna_nas:decided"


def mark_decided(trial: Any) -> None:
    """Record in storage that every architecture decision of ``trial`` is taken.

    Args:
        trial: An ``optuna.Trial``. Trials without storage (``optuna.trial.FixedTrial``) are left
            alone.
    """
    storage = getattr(trial, "storage", None)
    trial_id = getattr(trial, "_trial_id", None)
    if storage is None or trial_id is None:
        return
    storage.set_trial_system_attr(trial_id, DECIDED_KEY, True)


def is_decided(system_attrs: dict[str, Any]) -> bool:
    """Whether a trial's system attrs carry the mark."""
    return bool(system_attrs.get(DECIDED_KEY, False))
