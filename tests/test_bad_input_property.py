"""Bad input everywhere, generated: the commands answer one line and status 2, before any work and
without a traceback, leaving the storage as it was; the public constructors raise a ``ValueError``
that names the argument.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
import sqlite3
import tempfile

import optuna
import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from optuna_nas import objectives
from optuna_nas import predictors
from optuna_nas import pruners
from optuna_nas import samplers
from optuna_nas import spaces
from optuna_nas.cli import main
from optuna_nas.samplers._evolution import MAX_POPULATION

EXAMPLES = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
BENCHMARK = ["--benchmark", "nasbench201", "--dataset", "cifar10", "--sampler", "evolution"]
QUIET = ["--no-mlflow", "--no-progress"]

# -- Generated bad values ----------------------------------------------------------------------------

words = st.text(alphabet="abcxyz-_ ", min_size=1, max_size=6).filter(lambda w: w.strip())
not_numbers = st.one_of(words, st.sampled_from(["", "1e", "--", "0x1g", "one"]))
non_finite = st.sampled_from(["nan", "inf", "-inf", "NaN"])


def ints_below(minimum: int) -> st.SearchStrategy[str]:
    """Command-line values that are not integers >= ``minimum``."""
    return st.one_of(st.integers(max_value=minimum - 1).map(str), not_numbers, st.sampled_from(["1.5", "2e3"]))


def floats_not_above(bound: float) -> st.SearchStrategy[str]:
    """Command-line values that are not finite numbers > ``bound``."""
    below = st.floats(max_value=bound, allow_nan=False, allow_infinity=False).map(repr)
    return st.one_of(below, non_finite, not_numbers)


# -- The command line --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A SQLite file holding a two-trial benchmark study ``s`` made by ``search``, and a plain file."""
    folder = tmp_path_factory.mktemp("searched")
    path = folder / "nas.db"
    argv = ["search", "--storage", f"sqlite:///{path}", "--study-name", "s", *BENCHMARK, *QUIET, "--n-trials", "2"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    (folder / "a-file").write_text("not a folder\n")
    return path


def _snapshot(db: str) -> object:
    """What a storage holds, read without Optuna: every row of the tables that record studies and trials."""
    if not os.path.exists(db):
        return None
    with sqlite3.connect(db) as connection:
        tables = [r[0] for r in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        wanted = [t for t in tables if t.startswith(("studies", "study_", "trials", "trial_"))]
        return {t: sorted(map(repr, connection.execute(f"SELECT * FROM {t}"))) for t in wanted}


def _run(argv: list[str], cwd: str) -> tuple[int, str]:
    """``main(argv)`` in ``cwd``: its status (argparse's exit status for a malformed line) and stderr."""
    err, here = io.StringIO(), os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else 2
    finally:
        os.chdir(here)
    return code, err.getvalue()


def _assert_refused(argv: list[str], *, searched=None, fresh: bool = False) -> None:
    """``argv`` (``{db}`` the storage's file, ``{file}`` a plain file, ``{dir}`` a folder) ends in one
    line on stderr and status 2, and leaves the storage as it was: no study in a fresh one, the same
    rows in a copy of the searched one, no trial left running.
    """
    with tempfile.TemporaryDirectory() as folder:
        db = os.path.join(folder, "nas.db")
        if not fresh:
            shutil.copy(searched, db)
        plain = os.path.join(folder, "a-file")
        with open(plain, "w") as f:
            f.write("not a folder\n")
        os.mkdir(os.path.join(folder, "a-folder"))
        argv = [a.format(db=db, file=plain, dir=os.path.join(folder, "a-folder")) for a in argv]
        before = _snapshot(db)
        code, err = _run(argv, folder)
        assert code == 2, (argv, err)
        assert err.count("\n") == 1 and err.strip() and "Traceback" not in err, (argv, err)
        assert _snapshot(db) == before, argv  # nothing saved: no study, settings or trial
        if before is not None:
            trials = optuna.load_study(storage=f"sqlite:///{db}", study_name="s").get_trials(deepcopy=False)
            assert all(t.state != optuna.trial.TrialState.RUNNING for t in trials)


STORAGE = ["--storage", "sqlite:///{db}", "--study-name", "s"]

# The numeric options of each command, with values that are not what each takes.
SEARCH_NUMBERS = {
    "--n-trials": ints_below(1),
    "--n-jobs": ints_below(1),
    "--epochs": ints_below(1),
    "--batch-size": ints_below(1),
    "--learning-rate": floats_not_above(0.0),
    "--max-layers": ints_below(1),
    "--max-blocks": ints_below(1),
    "--channels": ints_below(1),
    "--max-nodes": ints_below(2),
    "--max-edges": ints_below(1),
    "--heartbeat-interval": ints_below(0),
    "--seed": not_numbers,
    "--filters": st.one_of(not_numbers, st.sampled_from(["16,,32", "0,8", "-4", "8,8"])),
}


@pytest.mark.parametrize("option", list(SEARCH_NUMBERS))
@EXAMPLES
@given(data=st.data())
def test_search_refuses_a_bad_number_before_creating_anything(option, data):
    value = data.draw(SEARCH_NUMBERS[option], label=option)
    space = ["--space", "cell"] if option in ("--max-blocks", "--channels") else []
    space = ["--space", "dag"] if option in ("--max-nodes", "--max-edges") else space
    benchmark = [] if space or option in ("--epochs", "--batch-size", "--learning-rate", "--filters") else BENCHMARK
    argv = ["search", *STORAGE, *QUIET, *benchmark, *space, "--dataset", "digits" if not benchmark else "cifar10"]
    _assert_refused([*argv, f"{option}={value}"], fresh=True)


SEARCH_PATHS = {
    "--table": ["{file}", "{dir}", "{dir}/missing.csv", ""],
    "--artifact-dir": ["{file}", "{file}/sub"],
    "--data-root": ["{file}"],
    "--mlflow-uri": ["", "sqlite:///{dir}/missing/m.db", "sqlite:///{file}/m.db", "{file}"],
    "--storage": ["", "nas.txt", "sqlite:///{dir}/missing/nas.db", "grpc://127.0.0.1", "{dir}"],
}


@pytest.mark.parametrize("option", list(SEARCH_PATHS))
@EXAMPLES
@given(data=st.data())
def test_search_refuses_a_bad_place_before_creating_anything(option, data):
    value = data.draw(st.sampled_from(SEARCH_PATHS[option]), label=option)
    mlflow = [] if option == "--mlflow-uri" else ["--no-mlflow"]
    argv = ["search", *STORAGE, "--no-progress", *mlflow, *BENCHMARK[:4], "--sampler", "random"]
    if option in ("--artifact-dir", "--data-root"):
        argv = ["search", *STORAGE, "--no-progress", "--no-mlflow", "--dataset", "digits", "--sampler", "random"]
    if option == "--storage":
        argv = [a for a in argv if a != "sqlite:///{db}" and a != "--storage"]
    _assert_refused([*argv, f"{option}={value}"], fresh=True)


WORKER_VALUES = {
    "--n-trials": ints_below(1),
    "--n-jobs": ints_below(1),
    "--seed": not_numbers,
    "--heartbeat-interval": ints_below(0),
    "--artifact-dir": st.sampled_from(["{file}", "{file}/sub"]),
    "--data-root": st.sampled_from(["{file}"]),
    "--mlflow-uri": st.sampled_from(["", "sqlite:///{dir}/missing/m.db", "{file}"]),
    "--study-name": st.sampled_from(["", " ", "other"]),
}


@pytest.mark.parametrize("option", list(WORKER_VALUES))
@EXAMPLES
@given(data=st.data())
def test_worker_refuses_a_bad_value_and_runs_no_trial(option, data, searched):
    value = data.draw(WORKER_VALUES[option], label=option)
    _assert_refused(["worker", *STORAGE, "--no-progress", f"{option}={value}"], searched=searched)


REPORT_VALUES = {
    ("pareto", "--reference"): st.one_of(
        non_finite.map(lambda v: f"{v},1,1"), not_numbers, st.just("1,2"), st.just("0,1,2,3"), st.just("")
    ),
    ("pareto", "--out-dir"): st.sampled_from(["{file}", "{file}/sub"]),
    ("export", "--trial"): st.one_of(
        st.integers(max_value=-1).map(str), st.integers(min_value=2).map(str), not_numbers
    ),
    ("export", "--retrain-epochs"): ints_below(0),
    ("export", "--out"): st.sampled_from(["{file}", "{file}/sub", ""]),
    ("export", "--artifact-dir"): st.sampled_from(["{file}", "{dir}/missing"]),
    ("export", "--format"): words,
    ("recover", "--grace"): st.one_of(
        st.floats(max_value=-1e-9, allow_infinity=False).map(repr), non_finite, not_numbers
    ),
    ("recover", "--heartbeat-interval"): ints_below(1),
    ("qtable", "--out"): st.sampled_from(["{dir}", "{file}/sub"]),
}


@pytest.mark.parametrize("command, option", list(REPORT_VALUES))
@EXAMPLES
@given(data=st.data())
def test_the_reading_commands_refuse_a_bad_value_and_change_nothing(command, option, data, searched):
    value = data.draw(REPORT_VALUES[(command, option)], label=option)
    required = {"export": ["--trial", "0", "--out", "{dir}/out"]}.get(command, [])
    required = [a for i, a in enumerate(required) if option not in (a, required[i - 1] if i else None)]
    _assert_refused([command, *STORAGE, *required, f"{option}={value}"], searched=searched)


DASHBOARD_VALUES = {
    "--port": st.one_of(st.integers(max_value=0).map(str), st.integers(min_value=65536).map(str), not_numbers),
    "--artifact-dir": st.sampled_from(["{file}", "{file}/sub"]),
    "--storage": st.sampled_from(["", "sqlite:///{dir}/missing.db", "nas.txt"]),
}


@pytest.mark.parametrize("option", list(DASHBOARD_VALUES))
@EXAMPLES
@given(data=st.data())
def test_the_dashboard_refuses_a_bad_value_before_serving(option, data, searched, monkeypatch):
    import optuna_dashboard

    monkeypatch.setattr(optuna_dashboard, "run_server", lambda *a, **kw: pytest.fail("served"))
    value = data.draw(DASHBOARD_VALUES[option], label=option)
    storage = [] if option == "--storage" else ["--storage", "sqlite:///{db}"]
    _assert_refused(["dashboard", *storage, f"{option}={value}"], searched=searched)


# -- The public constructors -------------------------------------------------------------------------

NB201 = spaces.NASBench201Space()

anything_but_numbers = st.one_of(st.none(), words, st.lists(st.integers(), max_size=2), st.booleans())
non_finite_floats = st.sampled_from([math.nan, math.inf, -math.inf])


def ints(minimum: int, *, maximum: int | None = None, none_ok: bool = False) -> st.SearchStrategy[object]:
    """Values that are not ints in ``[minimum, maximum]``."""
    bad = [
        st.integers(max_value=minimum - 1),
        st.floats(allow_nan=True).filter(lambda v: not float(v).is_integer()),
        words,
        st.booleans(),
    ]
    if maximum is not None:
        bad.append(st.integers(min_value=maximum + 1, max_value=10**15))
    if not none_ok:
        bad.append(st.none())
    return st.one_of(*bad)


def floats(low: float, high: float | None = None, *, open_low: bool = False, none_ok: bool = False):
    """Values that are not finite numbers in ``[low, high]`` (``(low, ...`` with ``open_low``)."""
    below = st.floats(max_value=low, allow_nan=False, allow_infinity=False)
    bad = [
        below if open_low else below.filter(lambda v: v < low),
        non_finite_floats,
        words,
        st.booleans(),
    ]
    if high is not None:
        bad.append(st.floats(min_value=high, allow_nan=False, allow_infinity=False).filter(lambda v: v > high))
    if not none_ok:
        bad.append(st.none())
    return st.one_of(*bad)


def one_of(allowed, *, none_ok: bool = False):
    """Values that are not among ``allowed``."""
    bad = st.one_of(words, st.integers(), *([] if none_ok else [st.none()])).filter(lambda v: v not in allowed)
    return bad


def booleans():
    return st.one_of(words, st.integers(), st.none(), st.just("False"))


CONSTRUCTORS = {
    "evolution": (
        samplers.AgingEvolutionSampler,
        {},
        {
            "population_size": ints(2, maximum=MAX_POPULATION),
            "sample_size": ints(1, maximum=MAX_POPULATION),
            "primary_share": floats(0.0, 1.0),
            "pruned": one_of(("last_value", "discard", "penalize")),
            "float_bins": ints(1),
            "avoid_duplicates": booleans(),
        },
    ),
    "metaqnn": (
        samplers.MetaQNNSampler,
        {},
        {
            "learning_rate": floats(0.0, 1.0, open_low=True),
            "discount": floats(0.0, 1.0),
            "replay": ints(0, maximum=10_000),
            "float_bins": ints(1),
        },
    ),
    "reinforce": (
        samplers.ReinforceSampler,
        {},
        {
            "learning_rate": floats(0.0, open_low=True),
            "batch_size": ints(1),
            "baseline_decay": floats(0.0, 1.0),
            "entropy_weight": floats(0.0),
            "hidden_size": ints(1),
            "temperature": floats(0.0, open_low=True),
            "advantage": one_of(("rank", "baseline")),
            "replay": ints(0),
            "self_imitation": ints(0),
        },
    ),
    "pnas": (
        samplers.PNASSampler,
        {"space": NB201},
        {"beam_size": ints(1), "max_blocks": ints(1, none_ok=True), "stage_one": ints(1, none_ok=True)},
    ),
    "evolution-guided": (
        samplers.PredictorGuidedSampler,
        {"sampler": samplers.AgingEvolutionSampler(), "space": NB201},
        {"candidates": ints(1), "exploration": floats(0.0), "min_trials": ints(2)},
    ),
    "image-classification": (
        objectives.ImageClassification,
        {"space": NB201, "dataset": "digits"},
        {
            "epochs": ints(1),
            "batch_size": ints(1),
            "learning_rate": floats(0.0, open_low=True),
            "weight_decay": floats(0.0),
            "optimizer": one_of(("adam", "sgd")),
            "objectives": st.one_of(words.map(lambda w: (w,)), st.just(()), st.none()),
            "max_params": floats(0.0, open_low=True, none_ok=True),
            "device": st.one_of(words, st.integers(min_value=-(2**62), max_value=-1), st.floats(allow_nan=True)),
        },
    ),
    "nasbench201": (
        objectives.NASBench201,
        {"table": objectives.DEFAULT_TABLE},
        {
            "dataset": one_of(objectives.NB201_DATASETS),
            "signal": st.one_of(words, st.sampled_from(["test", "x_test", "valid_12ep_test"]), st.none()),
            "multi_objective": booleans(),
        },
    ),
    "learning-curve": (
        pruners.LearningCurvePruner,
        {},
        {
            "min_complete_trials": ints(2),
            "min_epochs": ints(1),
            "confidence": floats(0.0),
            "use_architecture": booleans(),
            "n_estimators": ints(1),
            "seed": ints(0),
        },
    ),
    "mlp": (
        predictors.MLPEnsemble,
        {},
        {
            "hidden_sizes": st.one_of(st.just((0,)), st.just((8, -1)), words, st.none()),
            "ensemble_size": ints(1),
            "epochs": ints(1),
            "batch_size": ints(1),
            "learning_rate": floats(0.0, open_low=True),
            "loss": one_of(("l1", "l2", "mse")),
            "num_threads": ints(1, none_ok=True),
        },
    ),
    "lstm": (
        predictors.LSTMEnsemble,
        {},
        {"embedding_dim": ints(1), "hidden_size": ints(1), "ensemble_size": ints(1), "epochs": ints(1)},
    ),
    "trees": (
        predictors.TreeEnsemble,
        {},
        {
            "model": one_of(predictors.TREE_MODELS),
            "n_estimators": ints(1),
            "max_depth": ints(1, none_ok=True),
        },
    ),
}


@pytest.mark.parametrize(
    "name, argument", [(name, argument) for name, (_, _, arguments) in CONSTRUCTORS.items() for argument in arguments]
)
@EXAMPLES
@given(data=st.data())
def test_a_constructor_refuses_a_bad_argument_by_name(name, argument, data):
    constructor, required, arguments = CONSTRUCTORS[name]
    value = data.draw(arguments[argument], label=argument)
    with pytest.raises((ValueError, TypeError)) as raised:
        constructor(**required, **{argument: value})
    assert argument in str(raised.value), (argument, value, str(raised.value))


def test_the_bad_values_are_bad_for_the_right_reason():
    """Each constructor takes its defaults, so what the test above sees refused is the argument."""
    for constructor, required, _ in CONSTRUCTORS.values():
        constructor(**required)


@pytest.mark.parametrize("device", [2**63, -(2**63) - 1])
def test_a_device_index_too_large_for_torch_is_refused_by_name(device):
    with pytest.raises(ValueError, match="device"):
        objectives.ImageClassification(NB201, "digits", device=device)
