"""Storages our samplers need beyond Optuna's: a gRPC storage proxy client that keeps param order.

Our samplers read a trial as the sequence of its decisions (see :mod:`optuna_nas.samplers`), so they
need each trial's params in the order they were suggested. Optuna's RDB, journal and in-memory
storages keep that order; its gRPC storage proxy client does not (it receives params as a protobuf
map). Reach a gRPC storage proxy with :class:`OrderedGrpcStorageProxy` instead; the samplers refuse
Optuna's own client with a message naming this one.

Example:
    .. code-block:: python

        storage = optuna_nas.storages.OrderedGrpcStorageProxy(host="nas-proxy", port=13000)
        study = optuna.load_study(storage=storage, study_name="nas", sampler=samplers.MetaQNNSampler())
"""

from __future__ import annotations

import copy
from collections.abc import Container
from collections.abc import Sequence
from typing import Any

import optuna

#: The system attr of a trial written through :class:`OrderedGrpcStorageProxy`: its params' names in
#: the order they were suggested.
PARAM_ORDER_ATTR = "optuna_nas:param_order"


class OrderedGrpcStorageProxy(optuna.storages.GrpcStorageProxy):
    """Optuna's gRPC storage proxy client that keeps the order of each trial's params.

    The proxy sends a trial's params as a protobuf map, which does not keep their order, and
    Optuna does not require a storage to keep it. So each param written through this client also
    writes the names so far to the trial's :data:`PARAM_ORDER_ATTR`, and trials read are given their
    params in that order. A trial written by another client keeps the order the proxy gave. Needs
    grpcio (``pip install 'optuna-nas[grpc]'``).

    Args:
        host: The proxy server's host.
        port: The proxy server's port.
    """

    def __init__(self, *, host: str = "localhost", port: int = 13000) -> None:
        super().__init__(host=host, port=port)
        self._orders: dict[int, list[str]] = {}

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: optuna.distributions.BaseDistribution,
    ) -> None:
        super().set_trial_param(trial_id, param_name, param_value_internal, distribution)
        order = self._orders.setdefault(trial_id, [])
        if param_name not in order:
            order.append(param_name)
            super().set_trial_system_attr(trial_id, PARAM_ORDER_ATTR, list(order))

    def create_new_trial(self, study_id: int, template_trial: optuna.trial.FrozenTrial | None = None) -> int:
        if template_trial is not None and template_trial.params:  # study.add_trial: the template's order
            template_trial = copy.deepcopy(template_trial)
            template_trial.system_attrs = {**template_trial.system_attrs, PARAM_ORDER_ATTR: list(template_trial.params)}
        return super().create_new_trial(study_id, template_trial)

    def set_trial_state_values(
        self, trial_id: int, state: optuna.trial.TrialState, values: Sequence[float] | None = None
    ) -> bool:
        if state.is_finished():
            self._orders.pop(trial_id, None)
        return super().set_trial_state_values(trial_id, state, values)

    def get_trial(self, trial_id: int) -> optuna.trial.FrozenTrial:
        return _in_suggested_order(super().get_trial(trial_id))

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[optuna.trial.TrialState] | None = None,
    ) -> list[optuna.trial.FrozenTrial]:
        return [_in_suggested_order(t) for t in super().get_all_trials(study_id, deepcopy, states)]


def check_param_order(storage: Any, *, user: str) -> None:
    """Refuse a storage that gives a trial's params in no set order: Optuna's own gRPC storage proxy
    client and its subclasses, except :class:`OrderedGrpcStorageProxy`.

    Args:
        storage: A study's storage.
        user: Who needs the order, for the message (a sampler's or objective's class name).

    Raises:
        ValueError: ``storage`` does not keep the order; the message names :class:`OrderedGrpcStorageProxy`.
    """
    grpc_client = optuna.storages.GrpcStorageProxy
    if isinstance(storage, grpc_client) and not isinstance(storage, OrderedGrpcStorageProxy):
        raise ValueError(
            f"storage: {user} reads each trial as the sequence of its decisions, and {type(storage).__name__} "
            "gives a trial's params in no set order; reach the proxy with "
            "optuna_nas.storages.OrderedGrpcStorageProxy(host=..., port=...) instead."
        )


def _in_suggested_order(trial: optuna.trial.FrozenTrial) -> optuna.trial.FrozenTrial:
    """``trial`` with its params (and their distributions) in the order of its :data:`PARAM_ORDER_ATTR`."""
    order = trial.system_attrs.get(PARAM_ORDER_ATTR)
    params = trial.params
    if not isinstance(order, list) or list(params) == order[: len(params)]:
        return trial
    names = [n for n in order if n in params] + [n for n in params if n not in order]
    trial.params = {n: params[n] for n in names}
    trial.distributions = {n: trial.distributions[n] for n in names}
    return trial
