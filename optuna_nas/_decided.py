"""The mark a trial carries once every architecture decision of it is taken, and the claim it stands for.

A search space sets it at the end of ``space.suggest(trial)``; any objective may set it with
:func:`optuna_nas.samplers.mark_decided`. Samplers read it: a running trial that carries it is an
architecture under evaluation (no other worker should start the same one), and a pruned or failed
trial without it may have been cut short before its architecture was whole.

Marking is also a claim, where the study's sampler avoids duplicates (its ``avoid_duplicates``
attribute is true: the project's samplers by default). Samplers avoid the architectures other
workers have evaluated or marked, but with several workers a trial can still end on a taken one: two
workers decide the same one within the same few milliseconds, before either mark is visible, or
another worker takes the last free architecture under a prefix between two decisions of this trial
(a define-by-run sampler cannot go back). So marking writes ``checking`` with the number of params
it covers (the architecture: params suggested later, such as a learning rate, are not part of the
claim), then looks for rivals - running trials that claimed the same params, and finished trials
(complete or pruned, not failed: a failed architecture may be tried again) with exactly these
params: if a rival is evaluated or already training (``cleared``), or a lower-numbered rival is
checking too, this trial yields - it ends pruned, untrained, with ``optuna_nas:duplicate_of`` naming
the rival, and samplers learn nothing from it. A lower-numbered trial waits for higher-numbered
rivals to clear or yield; they never wait, so nobody waits for long. Then it writes ``cleared``.
With any storage whose writes are visible to the reads that follow them (SQLite, PostgreSQL,
journal, in-memory), no architecture is trained twice. Enqueued trials (``study.enqueue_trial``)
whose every decision was given are the user's explicit choice and never yield.
"""

from __future__ import annotations

import time
from typing import Any

import optuna
from optuna.trial import TrialState

DECIDED_KEY = "optuna_nas:decided"
#: How many of the trial's params (the first ones, in order) the mark covers: its architecture.
DECIDED_COUNT_KEY = "optuna_nas:decided_params"
DUPLICATE_KEY = "optuna_nas:duplicate_of"
CHECKING = "checking"
CLEARED = "cleared"
_WAIT_SECONDS = 10.0
_POLL_SECONDS = 0.005


def mark_decided(trial: Any) -> None:
    """Record in storage that every architecture decision of ``trial`` is taken, and claim it.

    Args:
        trial: An ``optuna.Trial``. Trials without storage (``optuna.trial.FixedTrial``) are left
            alone.

    Raises:
        optuna.TrialPruned: The study's sampler avoids duplicates and another trial has this
            architecture (evaluated, or started at the same time and kept); this trial ends
            untrained (``system_attrs["optuna_nas:duplicate_of"]`` names that trial).
    """
    storage = getattr(trial, "storage", None)
    trial_id = getattr(trial, "_trial_id", None)
    if storage is None or trial_id is None:
        return
    study_id = trial.study._study_id
    params = dict(trial.params)
    storage.set_trial_system_attr(trial_id, DECIDED_COUNT_KEY, len(params))
    storage.set_trial_system_attr(trial_id, DECIDED_KEY, CHECKING)
    own = storage.get_trial(trial_id)
    fixed = own.system_attrs.get("fixed_params") or {}
    if set(params) <= set(fixed) or not getattr(trial.study.sampler, "avoid_duplicates", False):
        storage.set_trial_system_attr(trial_id, DECIDED_KEY, CLEARED)
        return
    deadline = time.monotonic() + _WAIT_SECONDS
    holders = getattr(trial.study.sampler, "architecture_holders", None)
    while True:
        if holders is not None:
            candidates = holders(trial.study, own.number, params)
        else:
            candidates = [t for t in storage.get_all_trials(study_id, deepcopy=False) if t.params == params]
        rivals = [t for t in candidates if t.number != own.number and _is_rival(t, params)]
        keeper = next((t for t in rivals if _keeps(t, own.number)), None)
        if keeper is not None:
            storage.set_trial_system_attr(trial_id, DUPLICATE_KEY, keeper.number)
            raise optuna.TrialPruned(f"trial {keeper.number} has the same architecture; not trained twice")
        if not rivals or time.monotonic() > deadline:
            break
        time.sleep(_POLL_SECONDS)  # higher-numbered rivals still checking: they clear or yield soon
    storage.set_trial_system_attr(trial_id, DECIDED_KEY, CLEARED)


def claimed_params(trial: Any) -> dict[str, Any]:
    """The params a marked trial claimed: its first ones, as many as its mark covers (all of them
    for a trial marked before the count was recorded).
    """
    count = trial.system_attrs.get(DECIDED_COUNT_KEY)
    if count is None or count >= len(trial.params):
        return dict(trial.params)
    return dict(list(trial.params.items())[:count])


def _is_rival(other: Any, params: dict[str, Any]) -> bool:
    """Whether ``other`` holds the architecture ``params``: running and claimed it, or finished
    whole (complete, or pruned after its decisions) with exactly these params.
    """
    if DUPLICATE_KEY in other.system_attrs:
        return False
    if other.state == TrialState.RUNNING:
        return _mark(other.system_attrs) is not None and claimed_params(other) == params
    if other.state not in (TrialState.COMPLETE, TrialState.PRUNED) or other.params != params:
        return False
    return (
        other.state == TrialState.COMPLETE or _mark(other.system_attrs) is not None or bool(other.intermediate_values)
    )


def _keeps(other: Any, own_number: int) -> bool:
    """Whether the rival ``other`` keeps the architecture over this trial."""
    if other.state != TrialState.RUNNING:
        return True
    mark = _mark(other.system_attrs)
    return mark == CLEARED or (mark == CHECKING and other.number < own_number)


def _mark(system_attrs: dict[str, Any]) -> str | None:
    value = system_attrs.get(DECIDED_KEY)
    if value is None or value is False:
        return None
    return value if value in (CHECKING, CLEARED) else CLEARED


def is_decided(system_attrs: dict[str, Any]) -> bool:
    """Whether a trial's system attrs carry the mark (and it did not yield to a rival)."""
    return _mark(system_attrs) is not None and DUPLICATE_KEY not in system_attrs
