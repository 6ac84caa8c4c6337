"""Scale-out beyond one database: workers reach the study through Optuna's gRPC storage proxy."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import warnings

import optuna
import pytest
from optuna.trial import TrialState
from samplers._helpers import trained_architectures
from test_reliability import _replayed_copy

from optuna_nas.cli import main
from optuna_nas.cli._common import CONFIG_ATTR
from optuna_nas.cli._common import open_storage
from optuna_nas.objectives import DEFAULT_TABLE
from optuna_nas.objectives import NASBench201
from optuna_nas.objectives import SharedWeights
from optuna_nas.objectives._shared_weights import OWNER_KEY
from optuna_nas.samplers import ENASSampler
from optuna_nas.samplers import MetaQNNSampler
from optuna_nas.samplers import create_sampler
from optuna_nas.spaces import NB201_EDGES
from optuna_nas.spaces import CellSpace
from optuna_nas.storages import OrderedGrpcStorageProxy

pytest.importorskip("grpc")

SCRIPT = os.path.join(os.path.dirname(sys.executable), "optuna-nas")
BENCHMARK = ["--benchmark", "nasbench201", "--dataset", "cifar10", "--sampler", "evolution"]
QUIET = ["--no-mlflow", "--no-progress"]
WORKERS = 4
TRIALS_EACH = 15

# The proxy server as a user runs it: in front of the database, in a process of its own.
PROXY = """
import sys
import warnings

import optuna

warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
optuna.storages.run_grpc_proxy_server(
    optuna.storages.RDBStorage(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2])
)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def proxy(tmp_path):
    """``(grpc URL, SQLite URL)``: a gRPC storage proxy on a free loopback port in front of a new
    SQLite database, serving until the test ends.
    """
    database = f"sqlite:///{tmp_path / 'nas.db'}"
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", PROXY, database, str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        client = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        client.wait_server_ready(timeout=30)
        client.close()
        yield f"grpc://127.0.0.1:{port}", database
    finally:
        server.terminate()
        server.wait(timeout=30)


def test_four_workers_through_the_grpc_proxy_share_one_study(proxy, tmp_path):
    url, database = proxy
    assert main(["search", "--storage", url, "--study-name", "s", *BENCHMARK, *QUIET, "--n-trials", "2"]) == 0
    worker = [SCRIPT, "worker", "--storage", url, "--study-name", "s", *QUIET, "--n-trials", str(TRIALS_EACH)]
    started = time.monotonic()
    workers = [
        subprocess.Popen(worker, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        for _ in range(WORKERS)
    ]
    errors = [w.communicate(timeout=240)[1] for w in workers]
    assert [w.returncode for w in workers] == [0] * WORKERS, errors
    assert time.monotonic() - started < 240

    # What the proxy wrote, read from the database itself.
    study = optuna.load_study(storage=database, study_name="s")
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == 2 + WORKERS * TRIALS_EACH
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}  # pruned: yielded duplicates
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    assert CONFIG_ATTR in study.user_attrs  # the settings every worker read through the proxy
    trained = trained_architectures(study)  # no architecture evaluated twice
    assert len(trained) >= len(trials) // 2

    # Read through the proxy, each trial's params are in the order they were suggested, as in the database
    # (the proxy sends them as a map; the samplers' trie of decisions needs the order).
    through = optuna.load_study(storage=open_storage(url), study_name="s").get_trials(deepcopy=False)
    assert [list(t.params) for t in through] == [list(t.params) for t in trials]
    assert [list(t.distributions) for t in through] == [list(t.params) for t in trials]

    # The population a sampler rebuilds from the database is the one replayed over its finished trials.
    replay = _replayed_copy(study)
    for before in (2, len(trials) // 2, None):
        rebuilt = create_sampler("evolution", seed=0).learned_state(study, before=before)
        assert rebuilt == create_sampler("evolution", seed=0).learned_state(replay, before=before)


def test_a_grpc_storage_without_a_proxy_or_port_is_one_line_and_status_2(tmp_path, capsys, monkeypatch):
    import optuna_nas.cli._common as common

    monkeypatch.setattr(common, "GRPC_WAIT", 0.5)
    port = _free_port()  # nothing listens there
    for storage, message in [
        (f"grpc://127.0.0.1:{port}", "no gRPC storage proxy answered within 0.5 s"),
        ("grpc://127.0.0.1", "a gRPC storage proxy is given as grpc://HOST:PORT"),
        ("grpc://127.0.0.1:port", "a gRPC storage proxy is given as grpc://HOST:PORT"),
    ]:
        assert main(["worker", "--storage", storage, "--study-name", "s"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_from_python_our_samplers_refuse_optunas_proxy_client_and_learn_through_the_ordered_one(proxy):
    url, database = proxy
    port = int(url.rsplit(":", 1)[1])
    objective = NASBench201(DEFAULT_TABLE, "cifar10")
    in_order = [f"edge_{from_node}_to_{to_node}" for to_node, from_node in NB201_EDGES]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        plain = optuna.storages.GrpcStorageProxy(host="127.0.0.1", port=port)
        ordered = OrderedGrpcStorageProxy(host="127.0.0.1", port=port)
    try:
        # Optuna's client: a clear error at the first decision, before anything is trained.
        study = optuna.create_study(storage=plain, study_name="plain", direction="maximize", sampler=MetaQNNSampler())
        with pytest.raises(ValueError, match=r"^storage: .*OrderedGrpcStorageProxy"):
            study.optimize(objective, n_trials=1)
        assert [t.state for t in study.trials] == [TrialState.FAIL]

        # Ours: MetaQNN learns through the proxy what it learns from the database itself, decisions in order.
        study = optuna.create_study(
            storage=ordered, study_name="ordered", direction="maximize", sampler=MetaQNNSampler(seed=3)
        )
        study.optimize(objective, n_trials=12)
        direct = optuna.load_study(storage=database, study_name="ordered")
        names = [list(t.params) for t in direct.trials]
        assert names == [list(t.params) for t in study.trials]
        assert names == [in_order] * 12
        assert MetaQNNSampler(seed=3).q_table(study) == MetaQNNSampler(seed=3).q_table(direct)

        # A trial added whole (study.add_trial) keeps its order too.
        reversed_cell = dict.fromkeys(reversed(in_order), "skip_connect")
        study.add_trial(
            optuna.trial.create_trial(params=reversed_cell, distributions=study.trials[0].distributions, value=1.0)
        )
        assert list(study.trials[-1].params) == list(reversed_cell)

        # ENAS's shared weights refuse Optuna's client before claiming the study or loading anything.
        study = optuna.create_study(storage=plain, study_name="enas", direction="maximize", sampler=ENASSampler())
        shared = SharedWeights(CellSpace(max_blocks=1), "digits", batches_per_trial=1, objectives=("accuracy",))
        with pytest.raises(ValueError, match=r"^storage: SharedWeights .*OrderedGrpcStorageProxy"):
            shared.attach(study)
        rdb = optuna.storages.RDBStorage(database)
        assert OWNER_KEY not in rdb.get_study_system_attrs(rdb.get_study_id_from_name("enas"))
    finally:
        plain.close()
        ordered.close()
