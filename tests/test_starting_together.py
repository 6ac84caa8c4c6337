"""Processes starting together on a new storage: each creates or opens the same study, none fails.

Four real ``optuna-nas search`` processes (the command's entry point, in a fresh interpreter each)
first import everything, then wait for one signal, so that they reach the new storage within a
millisecond of each other, when its tables, version rows and the study do not exist yet. The
trials are scored from the NAS-Bench-201 table, so they are instant.
"""

import itertools
import os
import subprocess
import sys
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from optuna_nas.cli._common import CONFIG_ATTR

PROCESSES = 4
TRIALS = 2  # per process

# Imports first (they take seconds), then "ready", then the command at the signal on stdin.
CHILD = """
import sys
import optuna_nas.analysis, optuna_nas.cli._search, optuna_nas.objectives, optuna_nas.tracking
from optuna_nas.cli import main
print("ready", flush=True)
sys.stdin.readline()
sys.exit(main(sys.argv[1:]))
"""


def _start_together(storage, tmp_path):
    """Runs the processes, started at one signal; returns their ``(exit status, stderr)``."""
    processes = []
    for seed in range(PROCESSES):
        argv = ["search", "--storage", storage, "--study-name", "s", "--benchmark", "nasbench201"]
        argv += ["--dataset", "cifar10", "--sampler", "random", "--seed", str(seed), "--n-trials", str(TRIALS)]
        argv += ["--no-mlflow", "--no-progress"]
        processes.append(
            subprocess.Popen(
                [sys.executable, "-c", CHILD, *argv],
                cwd=tmp_path,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    try:
        for process in processes:
            assert process.stdout.readline() == "ready\n", process.communicate()
        for process in processes:
            process.stdin.write("go\n")
            process.stdin.flush()
        results = [process.communicate(timeout=300) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
    return [(process.returncode, err) for process, (_, err) in zip(processes, results, strict=True)]


def _check_one_study_with_every_trial(storage):
    assert optuna.study.get_all_study_names(storage) == ["s"]
    study = optuna.load_study(storage=storage, study_name="s")
    trials = study.get_trials(deepcopy=False)
    assert sorted(t.number for t in trials) == list(range(PROCESSES * TRIALS))  # distinct, no gaps
    assert all(t.state == TrialState.COMPLETE for t in trials)
    assert CONFIG_ATTR in study.user_attrs and study.metric_names == ["accuracy", "params", "flops"]


def _postgres_database():
    """A new, empty database on the PostgreSQL server the CI starts; its URL and a function that drops it."""
    url = os.environ.get("OPTUNA_NAS_TEST_POSTGRES_URL")
    if url is None:
        if os.environ.get("CI"):
            pytest.fail("OPTUNA_NAS_TEST_POSTGRES_URL is not set: .ci/run starts PostgreSQL and sets it")
        pytest.skip("no PostgreSQL server: set OPTUNA_NAS_TEST_POSTGRES_URL (.ci/run starts one)")
    import sqlalchemy

    server = sqlalchemy.create_engine(url, isolation_level="AUTOCOMMIT")
    name = f"optuna_nas_together_{uuid.uuid4().hex[:12]}"
    try:
        with server.connect() as connection:
            connection.execute(sqlalchemy.text(f'CREATE DATABASE "{name}"'))
    except sqlalchemy.exc.OperationalError as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"the PostgreSQL server at OPTUNA_NAS_TEST_POSTGRES_URL is not reachable: {error.orig}")

    def drop():
        with server.connect() as connection:
            connection.execute(sqlalchemy.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        server.dispose()

    return sqlalchemy.engine.make_url(url).set(database=name).render_as_string(hide_password=False), drop


@pytest.mark.parametrize("backend", ["sqlite", "journal", "postgresql"])
def test_processes_starting_together_on_a_new_storage_share_one_study(backend, tmp_path):
    drop = None
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'new.db'}"
    elif backend == "journal":
        url = str(tmp_path / "new.journal")
    else:
        url, drop = _postgres_database()
    try:
        results = _start_together(url, tmp_path)
        assert all(status == 0 for status, _ in results), results
        assert all("Traceback" not in err and "error" not in err for _, err in results), results
        if backend == "journal":
            from optuna.storages.journal import JournalFileBackend

            storage = optuna.storages.JournalStorage(JournalFileBackend(url))
        else:
            storage = optuna.storages.RDBStorage(url)
        _check_one_study_with_every_trial(storage)
        if isinstance(storage, optuna.storages.RDBStorage):
            storage.engine.dispose()
    finally:
        if drop is not None:
            drop()


def test_a_race_that_does_not_end_is_one_line_after_a_bounded_wait(tmp_path, monkeypatch):
    import sqlalchemy

    from optuna_nas.cli import _common

    waits, tries = [], []

    def locked(*args, **kwargs):
        tries.append(args)
        raise sqlalchemy.exc.OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(optuna.storages, "RDBStorage", locked)
    monkeypatch.setattr(_common.time, "sleep", waits.append)
    url = f"sqlite:///{tmp_path / 'new.db'}"
    with pytest.raises(_common.CommandError, match=r"cannot be opened: .*database is locked") as error:
        _common.open_storage(url)
    assert "\n" not in str(error.value)
    assert len(tries) == _common.FIRST_USE_ATTEMPTS and len(waits) == _common.FIRST_USE_ATTEMPTS - 1
    assert all(later > earlier for earlier, later in itertools.pairwise(waits))  # backing off
    assert sum(waits) < 10


def test_only_first_use_races_are_tried_again():
    import sqlalchemy

    from optuna_nas.cli._common import CommandError
    from optuna_nas.cli._common import NotReady
    from optuna_nas.cli._common import is_first_use_race

    def driver(message):
        return sqlalchemy.exc.ProgrammingError("CREATE TABLE", {}, Exception(message))

    assert is_first_use_race(driver('relation "studies" already exists'))
    assert is_first_use_race(driver('duplicate key value violates unique constraint "alembic_version_pkc"'))
    assert is_first_use_race(optuna.exceptions.DuplicatedStudyError())
    assert is_first_use_race(NotReady("no settings yet"))
    assert not is_first_use_race(driver("connection refused"))
    try:  # a refusal is final, whatever it was raised from
        try:
            raise driver("database is locked")
        except sqlalchemy.exc.ProgrammingError:
            raise CommandError("--dataset 'cifar100': study 's' was searched with 'cifar10'") from None
    except CommandError as refusal:
        assert not is_first_use_race(refusal)
