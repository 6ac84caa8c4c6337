"""Killed and stopped workers: SIGKILL mid-trial, SIGTERM, ``optuna-nas recover``.

The SIGKILL and SIGTERM tests run real ``optuna-nas`` processes on SQLite with a tiny training
objective, so that a trial is RUNNING long enough to be hit.
"""

import os
import re
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
import warnings

import optuna
import pytest
from _search_args import TINY_SEARCH
from optuna.trial import TrialState

from optuna_nas.cli import main
from optuna_nas.cli._common import open_storage
from optuna_nas.samplers import create_sampler

SCRIPT = os.path.join(os.path.dirname(sys.executable), "optuna-nas")
HEARTBEAT = 1  # seconds; the grace period is twice it
GRACE = 2 * HEARTBEAT


def _command(command, db, *extra):
    return [
        SCRIPT,
        command,
        "--storage",
        f"sqlite:///{db}",
        "--study-name",
        "s",
        "--no-mlflow",
        "--no-progress",
        "--heartbeat-interval",
        str(HEARTBEAT),
        *extra,
    ]


def _column(db, query):
    """The first column of ``query``'s rows, read without Optuna while a process writes; nothing while
    the tables are not created yet."""
    try:
        with sqlite3.connect(db, timeout=5) as connection:
            return [row[0] for row in connection.execute(query)]
    except sqlite3.OperationalError:
        return []


def _states(db):
    """The trials' states in number order."""
    return _column(db, "SELECT state FROM trials ORDER BY number")


def _beating(db):
    """The numbers of the RUNNING trials that have a heartbeat: past ``study.ask``, in their objective."""
    return _column(
        db,
        "SELECT number FROM trials JOIN trial_heartbeats ON trials.trial_id = trial_heartbeats.trial_id "
        "WHERE state = 'RUNNING'",
    )


def _training(db):
    """The numbers of the RUNNING trials that have finished an epoch."""
    return _column(
        db,
        "SELECT number FROM trials JOIN trial_user_attributes ON trials.trial_id = trial_user_attributes.trial_id "
        "WHERE state = 'RUNNING' AND key = 'val_accuracy_curve'",
    )


def _wait_for_a_running_trial(process, db, *, finished, trained=False):
    """Poll until ``finished`` trials are complete and a later one is RUNNING in its objective (its
    heartbeat recorded: Optuna starts it once the sampler has chosen the trial's first values) and,
    if ``trained``, has finished its first epoch.
    """
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, process.communicate()
        states = _states(db)
        if states.count("COMPLETE") >= finished and states[-1:] == ["RUNNING"] and _beating(db):
            if not trained or _training(db):
                return
        time.sleep(0.05)
    raise AssertionError(f"no running trial after {finished} finished ones: {_states(db)}")


def _finished(study):
    """What must survive a killed worker: every finished trial, as stored."""
    return {
        t.number: (t.state, t.values, t.params, t.user_attrs, t.datetime_complete)
        for t in study.get_trials(deepcopy=False)
        if t.state.is_finished()
    }


def _journal(path):
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))


def _replayed_copy(study):
    """An in-memory study holding copies of ``study``'s finished trials, in number order."""
    copy = optuna.create_study(directions=study.directions)
    for t in study.get_trials(deepcopy=False):
        assert t.state.is_finished()
        copy.add_trial(
            optuna.trial.create_trial(
                state=t.state,
                params=t.params,
                distributions=t.distributions,
                values=t.values,
                intermediate_values=t.intermediate_values,
                user_attrs=t.user_attrs,
                system_attrs=t.system_attrs,
            )
        )
    return copy


def test_a_trial_killed_by_sigkill_is_failed_by_the_next_worker_and_nothing_else_changes(tmp_path):
    db, url = tmp_path / "nas.db", f"sqlite:///{tmp_path / 'nas.db'}"
    search = subprocess.Popen(
        _command("search", db, *TINY_SEARCH, "--sampler", "evolution", "--n-trials", "100", "--artifact-dir", ""),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _wait_for_a_running_trial(search, db, finished=3)
    search.kill()
    search.wait()
    killed_at, killed_wall = time.monotonic(), time.time()
    assert search.returncode == -signal.SIGKILL
    study = optuna.load_study(storage=url, study_name="s")
    before = _finished(study)
    (killed,) = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    assert killed.number == max(before) + 1 and len(before) >= 3

    # The next worker starts at once; it fails the trial as it starts or, if the grace period has not
    # passed by then, after one of its trials. It is stopped (SIGTERM) once it has finished a trial.
    started = time.monotonic()
    worker = subprocess.Popen(
        _command("worker", db, "--n-trials", "100"), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    failed_at = None
    while failed_at is None or "COMPLETE" not in _states(db)[killed.number + 1 :]:
        assert worker.poll() is None, worker.communicate()
        if failed_at is None and _states(db)[killed.number] != "RUNNING":
            failed_at = time.monotonic()
        time.sleep(0.05)
    worker.send_signal(signal.SIGTERM)
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 143, err

    study = optuna.load_study(storage=url, study_name="s")
    trials = study.get_trials(deepcopy=False)
    recovered, new = trials[killed.number], trials[killed.number + 1 :]
    assert recovered.state == TrialState.FAIL
    reason = recovered.user_attrs["fail_reason"]
    assert reason.startswith("recovered: no heartbeat for ") and f"(grace {GRACE} s), its worker is gone" in reason
    assert f"optuna-nas: trial {killed.number} failed, no heartbeat for " in err.decode()
    # Failed once silent for the grace period (its last heartbeat came at most one interval before the
    # kill), and before any trial the new worker began once the grace had surely passed (the
    # database's clock has 1 s steps).
    failed_wall = recovered.datetime_complete.timestamp()
    assert failed_wall >= killed_wall + GRACE - HEARTBEAT - 0.1
    due = [t for t in new if t.datetime_start.timestamp() >= killed_wall + GRACE + 1]
    assert not due or recovered.datetime_complete <= due[0].datetime_start
    # No finished trial lost or changed.
    assert {n: v for n, v in _finished(study).items() if n in before} == before

    # A sampler rebuilt from the storage learns what one replayed over the same finished trials learns,
    # before the killed trial (what the killed worker knew) and after the new worker's trials.
    replay = _replayed_copy(study)
    for before_number in (killed.number, None):
        rebuilt = create_sampler("evolution", seed=0).learned_state(study, before=before_number)
        replayed = create_sampler("evolution", seed=0).learned_state(replay, before=before_number)
        assert rebuilt == replayed
    assert create_sampler("evolution", seed=0).learned_state(study, before=killed.number) == create_sampler(
        "evolution", seed=0
    ).learned_state(study, before=killed.number + 1)  # the failed trial taught nothing
    when = (
        "before its first trial"
        if recovered.datetime_complete <= new[0].datetime_start
        else f"after {sum(t.datetime_complete <= recovered.datetime_complete for t in new)} of its trials"
    )
    print(
        f"\nkill test: trial {killed.number} killed by SIGKILL after {len(before)} finished trials (heartbeat "
        f"{HEARTBEAT} s, grace {GRACE} s); the next worker, started {started - killed_at:.1f} s after the kill, "
        f"failed it {when}, {failed_at - started:.1f} s after it started and {failed_at - killed_at:.1f} s after "
        f"the kill: {reason!r}"
    )


def test_a_running_worker_fails_a_trial_whose_heartbeat_stops_with_the_reason(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    common = ["--storage", url, "--study-name", "s", "--no-mlflow", "--no-progress", "--heartbeat-interval", "1"]
    nb201 = ["--benchmark", "nasbench201", "--dataset", "cifar10", "--sampler", "evolution"]
    assert main(["search", *common, *nb201, "--n-trials", "2"]) == 0
    storage = optuna.storages.RDBStorage(url)
    other = optuna.load_study(storage=storage, study_name="s").ask()  # another worker's trial, alive
    storage.record_heartbeat(other._trial_id)

    def beat_then_die():  # the other worker beats until this one has run three trials, then is killed
        while _states(tmp_path / "nb.db").count("COMPLETE") < 5:
            storage.record_heartbeat(other._trial_id)
            time.sleep(0.1)
        # Its last heartbeat as if it came two seconds ago (the database's clock has 1 s steps), then
        # silence: the trial is due within a second, as a real one would be, not past every grace at once.
        with sqlite3.connect(tmp_path / "nb.db", timeout=30) as connection:
            connection.execute(
                "UPDATE trial_heartbeats SET heartbeat = datetime('now', '-2 seconds') WHERE trial_id = ?",
                (other._trial_id,),
            )

    killer = threading.Thread(target=beat_then_die)
    killer.start()
    assert main(["worker", *common, "--n-trials", "150"]) == 0
    killer.join()
    trials = optuna.load_study(storage=url, study_name="s").trials
    failed = trials[other.number]
    assert failed.state == TrialState.FAIL
    # Failed by this worker's check, with the reason, before Optuna's own (a second later) could.
    reason = failed.user_attrs["fail_reason"]
    assert re.fullmatch(r"recovered: no heartbeat for [0-9]+ s \(grace 2 s\), its worker is gone", reason), reason
    assert f"optuna-nas: trial {other.number} failed, {reason.removeprefix('recovered: ')}" in capsys.readouterr().err
    # Failed between two of this worker's trials, at the first check after its heartbeat stopped.
    mine = [t for t in trials if t.number > other.number]
    assert len(mine) == 150 and all(t.state == TrialState.COMPLETE for t in mine)
    assert mine[2].datetime_complete < failed.datetime_complete < mine[-1].datetime_start


def test_a_trial_failed_by_optunas_own_heartbeat_check_is_named_on_stderr(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'nb.db'}"
    storage = open_storage(url, heartbeat_interval=1)
    study = optuna.create_study(storage=storage, study_name="s")
    silent = study.ask()
    storage.record_heartbeat(silent._trial_id)
    with sqlite3.connect(tmp_path / "nb.db", timeout=30) as connection:
        connection.execute("UPDATE trial_heartbeats SET heartbeat = datetime('now', '-600 seconds')")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    assert study.trials[silent.number].state == TrialState.FAIL
    err = capsys.readouterr().err
    assert err == f"optuna-nas: trial {silent.number} failed, no heartbeat (Optuna's check), its worker is gone\n"


def test_sigterm_fails_the_running_trial_with_the_reason_and_exits_143(tmp_path):
    db = tmp_path / "nas.db"
    search = subprocess.Popen(
        _command("search", db, *TINY_SEARCH, "--epochs", "15", "--sampler", "metaqnn", "--artifact-dir", ""),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    # Signalled after the running trial's first epoch: fourteen to go (seconds), each with progress
    # callbacks, so the trial cannot end before the signal lands.
    _wait_for_a_running_trial(search, db, finished=1, trained=True)
    before = _finished(optuna.load_study(storage=f"sqlite:///{db}", study_name="s"))
    search.send_signal(signal.SIGTERM)
    out, err = search.communicate(timeout=60)
    assert search.returncode == 143
    assert err == "optuna-nas: stopped by SIGTERM; finished trials are in the storage\n"
    assert out == ""

    study = optuna.load_study(storage=f"sqlite:///{db}", study_name="s")
    after = _finished(study)
    assert {n: after[n] for n in before} == before
    trials = study.get_trials(deepcopy=False)
    (stopped,) = (t for t in trials if t.number not in before)
    assert stopped.state == TrialState.FAIL and stopped.user_attrs["fail_reason"] == "stopped by SIGTERM"
    # Stopped in training, at a progress callback: after epoch 1 and by the last epoch's at the latest.
    assert 1 <= len(stopped.user_attrs["val_accuracy_curve"]) <= 15


def _journal_study_with_a_killed_worker(tmp_path):
    """A journal study with one finished trial and one left RUNNING by a process killed with SIGKILL."""
    journal = tmp_path / "nas.journal"
    code = textwrap.dedent(
        f"""
        import os, signal, optuna
        from optuna.storages.journal import JournalFileBackend
        storage = optuna.storages.JournalStorage(JournalFileBackend({str(journal)!r}))
        study = optuna.create_study(storage=storage, study_name="s")
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
        trial = study.ask()
        trial.suggest_float("x", 0, 1)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == -signal.SIGKILL
    return str(journal)


def test_recover_fails_a_journal_studys_orphan_only_when_told_it_is_gone(tmp_path, capsys):
    journal = _journal_study_with_a_killed_worker(tmp_path)
    argv = ["recover", "--storage", journal, "--study-name", "s"]
    study = optuna.load_study(storage=_journal(journal), study_name="s")
    complete = study.trials[0]

    # The journal keeps no heartbeat: without --grace nothing is failed, and the summary says what to do.
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out == (
        "study 's': 0 of 1 running trials failed; left running: 1 without a heartbeat "
        "(pass --grace SECONDS to fail those silent that long)\n"
    )
    # A fresh trial is within a large grace.
    assert main([*argv, "--grace", "3600"]) == 0
    assert "0 of 1 running trials failed; left running: 1 without a heartbeat, started within 3600 s" in (
        capsys.readouterr().out
    )
    assert study.trials[1].state == TrialState.RUNNING

    assert main([*argv, "--grace", "0"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("trial 1: failed, started ") and out[0].endswith(
        "s ago, no heartbeat recorded (grace 0 s), its worker is gone"
    )
    assert out[1:] == ["study 's': 1 of 1 running trials failed"]
    trials = optuna.load_study(storage=_journal(journal), study_name="s").trials
    assert trials[1].state == TrialState.FAIL and trials[1].user_attrs["fail_reason"].startswith("recovered: started ")
    assert trials[0] == complete
    assert main(argv) == 0
    assert capsys.readouterr().out == "study 's': no running trial\n"


def test_recover_on_an_rdb_storage_fails_the_trials_whose_heartbeat_stopped(tmp_path, capsys):
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    storage = optuna.storages.RDBStorage(url)
    study = optuna.create_study(storage=storage, study_name="s")
    silent, beating, _without_heartbeat = (study.ask() for _ in range(3))
    for trial in (silent, beating):
        storage.record_heartbeat(trial._trial_id)
    with sqlite3.connect(tmp_path / "nas.db") as connection:  # its worker died 10 minutes ago
        connection.execute(
            "UPDATE trial_heartbeats SET heartbeat = datetime('now', '-600 seconds') WHERE trial_id = ?",
            (silent._trial_id,),
        )
    assert main(["recover", "--storage", url, "--study-name", "s"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("trial 0: failed, no heartbeat for 60") and "(grace 120 s)" in out[0]
    assert out[1] == (
        "study 's': 1 of 3 running trials failed; left running: 1 with a heartbeat within 120 s, 1 without a "
        "heartbeat (pass --grace SECONDS to fail those silent that long)"
    )
    states = [t.state for t in optuna.load_study(storage=url, study_name="s").trials]
    assert states == [TrialState.FAIL, TrialState.RUNNING, TrialState.RUNNING]
    assert main(["recover", "--storage", url, "--study-name", "s", "--grace", "0"]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "study 's': 2 of 2 running trials failed"
    assert {t.state for t in optuna.load_study(storage=url, study_name="s").trials} == {TrialState.FAIL}


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--grace", "-1"], "--grace must be a number of seconds >= 0 (0: every running trial), got -1"),
        (["--grace", "nan"], "--grace must be a number of seconds >= 0"),
        (["--heartbeat-interval", "0"], "--heartbeat-interval must be a whole number of seconds >= 1, got 0"),
    ],
)
def test_bad_recover_arguments_are_one_line_and_exit_2(tmp_path, capsys, extra, message):
    journal = tmp_path / "nas.journal"
    optuna.create_study(storage=_journal(journal), study_name="s").ask()
    assert main(["recover", "--storage", str(journal), "--study-name", "s", *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("optuna-nas: error: ") and message in err and err.count("\n") == 1
    study = optuna.load_study(storage=_journal(journal), study_name="s")
    assert study.trials[0].state == TrialState.RUNNING


def test_recover_says_which_study_is_missing_and_imports_no_torch(tmp_path):
    journal = tmp_path / "nas.journal"
    optuna.create_study(storage=_journal(journal), study_name="s")
    code = (
        "import sys; from optuna_nas.cli import main; "
        f"status = main(['recover', '--storage', {str(journal)!r}, '--study-name', 'other']); "
        "print(status, 'torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.stdout == "2 False\n"
    assert result.stderr == f"optuna-nas: error: --study-name 'other' is not in {journal}; its studies: ['s']\n"


@pytest.mark.parametrize("command", ["search", "worker"])
def test_a_negative_heartbeat_interval_is_refused(tmp_path, capsys, command):
    argv = [command, "--storage", f"sqlite:///{tmp_path / 'nas.db'}", "--study-name", "s", "--no-mlflow"]
    assert main([*argv, "--heartbeat-interval", "-1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "optuna-nas: error: --heartbeat-interval must be a whole number of seconds >= 0 (0: no heartbeat), got -1\n"
    )
    assert not (tmp_path / "nas.db").exists()
