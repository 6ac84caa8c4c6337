"""A study that is safe to share: nothing read from it is unpickled or evaluated, and the places its
saved settings name are checked when read, never echoed with a file's content, and overridable.
"""

from __future__ import annotations

import ast
import json
import os
import pathlib
import shutil

import optuna
import pytest

import optuna_nas
from optuna_nas.cli import main
from optuna_nas.cli._common import CONFIG_ATTR

PACKAGE = pathlib.Path(optuna_nas.__file__).parent

# Modules that turn bytes into arbitrary objects (and so can run code): never imported.
UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "cloudpickle", "dill", "marshal", "shelve", "jsonpickle"}
# Calls that unpickle whatever module they are reached through.
UNPICKLING_CALLS = {("joblib", "load"), ("marshal", "loads"), ("marshal", "load"), ("pandas", "read_pickle")}


def _dotted(node: ast.expr) -> str:
    """``a.b.c`` for a name or attribute chain, ``''`` for anything else."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else ""
    return ""


def _keyword_is(call: ast.Call, name: str, value: object) -> bool:
    return any(k.arg == name and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def unsafe_uses(source: str) -> list[str]:
    """The lines of ``source`` that unpickle or evaluate: ``(line) what``."""
    tree = ast.parse(source)
    aliases = {"np": "numpy", "pd": "pandas"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            aliases.update({a.asname: a.name for a in node.names if a.asname})
        if isinstance(node, ast.ImportFrom) and node.module:
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [
                f"({node.lineno}) import {a.name}" for a in node.names if a.name.split(".")[0] in UNPICKLING_MODULES
            ]
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in UNPICKLING_MODULES:
                found.append(f"({node.lineno}) from {node.module} import ...")
            found += [
                f"({node.lineno}) from {node.module} import {a.name}"
                for a in node.names
                if (node.module.split(".")[0], a.name) in UNPICKLING_CALLS
            ]
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            head, _, rest = name.partition(".")
            full = f"{aliases.get(head, head)}.{rest}" if rest else aliases.get(head, head)
            module, _, function = full.rpartition(".")
            if full in ("eval", "exec", "builtins.eval", "builtins.exec"):
                found.append(f"({node.lineno}) {name}(...)")
            elif (module.split(".")[0], function) in UNPICKLING_CALLS:
                found.append(f"({node.lineno}) {name}(...)")
            elif full == "torch.load" and not _keyword_is(node, "weights_only", True):
                found.append(f"({node.lineno}) {name}(...) without weights_only=True")
            elif full == "numpy.load" and any(k.arg == "allow_pickle" for k in node.keywords):
                if not _keyword_is(node, "allow_pickle", False):
                    found.append(f"({node.lineno}) {name}(..., allow_pickle=...)")
    return found


@pytest.mark.parametrize(
    "source",
    [
        "import pickle",
        "import cloudpickle as cp",
        "from dill import loads",
        "from pickle import load as read",
        "import joblib\njoblib.load('m.joblib')",
        "from joblib import load",
        "import marshal\nmarshal.loads(b'')",
        "import torch\ntorch.load('w.pt')",
        "import torch\ntorch.load('w.pt', weights_only=False)",
        "import numpy as np\nnp.load('a.npy', allow_pickle=True)",
        "import numpy\nnumpy.load('a.npy', allow_pickle=flag)",
        "eval('1 + 1')",
        "exec('x = 1')",
        "import pandas as pd\npd.read_pickle('f')",
    ],
)
def test_the_scan_finds_each_way_of_unpickling_or_evaluating(source):
    assert unsafe_uses(source), source


@pytest.mark.parametrize(
    "source",
    [
        "import torch\ntorch.load('w.pt', weights_only=True)",
        "import numpy as np\nnp.load('a.npz', allow_pickle=False)\nnp.load('a.npz')",
        "model.eval()",
        "import json\njson.loads('{}')",
    ],
)
def test_the_scan_passes_safe_loading(source):
    assert unsafe_uses(source) == []


def test_the_package_never_unpickles_or_evaluates():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    found = {
        str(path.relative_to(PACKAGE.parent)): uses
        for path in files
        if (uses := unsafe_uses(path.read_text(encoding="utf-8")))
    }
    assert found == {}


BENCHMARK = ["--benchmark", "nasbench201", "--dataset", "cifar10", "--sampler", "evolution", "--no-mlflow"]
SECRET = "TOP-SECRET first line"


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A SQLite file holding a two-trial benchmark study made by ``search``."""
    path = tmp_path_factory.mktemp("searched") / "nas.db"
    argv = ["search", "--storage", f"sqlite:///{path}", "--study-name", "s", *BENCHMARK, "--no-progress"]
    assert main([*argv, "--n-trials", "2"]) == 0
    return path


@pytest.fixture
def study(searched, tmp_path, monkeypatch):
    """A copy of the searched study, a file with a secret, and a way to edit the study's saved
    settings; the current folder is an empty one.
    """
    shutil.copy(searched, tmp_path / "nas.db")
    url = f"sqlite:///{tmp_path / 'nas.db'}"
    secret = tmp_path / "secret.csv"
    secret.write_text(f"{SECRET}\n1,2,3\n")
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    loaded = optuna.load_study(storage=url, study_name="s")
    saved = json.loads(loaded.user_attrs[CONFIG_ATTR])

    def edit(**changes):
        loaded.set_user_attr(CONFIG_ATTR, json.dumps({**saved, **changes}))

    return url, secret, here, edit


def _run(capsys, *argv):
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err


COMMANDS = {
    "worker": ["worker", "--n-trials", "1", "--no-progress"],
    "pareto": ["pareto", "--out-dir", "plots"],
    "export": ["export", "--trial", "0", "--out", "exported"],
}


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize(
    "setting, value, problem",
    [
        ("artifact_dir", "{secret}", "is not a folder"),
        ("artifact_dir", "artifacts", "is a relative path"),
        ("artifact_dir", "../../elsewhere", "is a relative path"),
        ("mlflow_uri", "sqlite:///mlflow.db", "names a SQLite file by a relative path"),
        ("mlflow_uri", "mlruns", "is a relative path"),
        ("mlflow_uri", "{secret}", "is not a folder"),
        ("data_root", "{secret}", "is not a folder"),
        ("data_root", "data", "is a relative path"),
    ],
)
def test_a_place_edited_in_the_saved_settings_is_refused_by_name_before_any_work(
    study, capsys, command, setting, value, problem
):
    url, secret, here, edit = study
    value = value.format(secret=secret)
    edit(**{setting: value})
    code, err = _run(capsys, *COMMANDS[command], "--storage", url, "--study-name", "s")
    used = {"worker": True, "pareto": setting != "data_root", "export": setting == "artifact_dir"}[command]
    if not used:  # a place the command does not read is not checked either (export: no weights kept)
        assert setting not in err
        return
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err and SECRET not in err
    assert f"its saved setting {setting} {value!r} {problem}" in err
    flag = {"artifact_dir": "--artifact-dir", "mlflow_uri": "--mlflow-uri", "data_root": "--data-root"}[setting]
    assert (flag in err) == (command != "pareto")  # pareto takes no places on its command line
    assert os.listdir(here) == []
    assert len(optuna.load_study(storage=url, study_name="s").trials) == 2


def test_a_place_given_on_the_command_line_overrides_an_edited_one(study, capsys):
    url, secret, here, edit = study
    edit(artifact_dir=str(secret), mlflow_uri="mlruns", data_root="data")
    given = ["--artifact-dir", str(here / "arts"), "--no-mlflow", "--data-root", str(here)]
    code, err = _run(
        capsys, "worker", "--storage", url, "--study-name", "s", "--n-trials", "1", "--no-progress", *given
    )
    assert code == 0, err
    assert len(optuna.load_study(storage=url, study_name="s").trials) == 3
    code, err = _run(capsys, "export", "--storage", url, "--study-name", "s", "--trial", "0", "--out", "x", *given[:2])
    assert "its saved setting" not in err


@pytest.mark.parametrize(
    "value, message",
    [
        ("{secret}", "table: '{secret}' has no 'arch' column"),
        ("secret.csv", "its saved setting table 'secret.csv' is a relative path"),
        ("{tmp}/missing.csv", "its saved setting table '{tmp}/missing.csv' names no file here"),
        ("{tmp}", "its saved setting table '{tmp}' names no file here"),
    ],
)
def test_a_worker_never_echoes_the_content_of_a_table_the_settings_were_edited_to_name(
    study, capsys, tmp_path, value, message
):
    url, secret, here, edit = study
    (here / "secret.csv").write_text(secret.read_text())
    edit(table=value.format(secret=secret, tmp=tmp_path))
    code, err = _run(capsys, *COMMANDS["worker"], "--storage", url, "--study-name", "s")
    assert code == 2 and err.count("\n") == 1 and SECRET not in err
    assert message.format(secret=secret, tmp=tmp_path) in err
    assert len(optuna.load_study(storage=url, study_name="s").trials) == 2


def test_a_table_whose_values_are_not_numbers_is_named_without_its_content(tmp_path):
    from optuna_nas import objectives

    table = tmp_path / "t.csv"
    table.write_text(f"arch,cifar10_valid_12ep\nx,{SECRET}\n")
    with pytest.raises(ValueError, match="line 2: 'cifar10_valid_12ep' is not a number") as raised:
        objectives.NASBench201(table, "cifar10")
    assert SECRET not in str(raised.value)
    table.write_bytes(b"\xff\xfe\x00binary" + SECRET.encode())
    with pytest.raises(ValueError, match="is not a CSV text file") as raised:
        objectives.NASBench201(table, "cifar10")
    assert SECRET not in str(raised.value)


def test_the_dashboard_refuses_an_edited_artifact_folder_unless_given_one(study, capsys, monkeypatch):
    import optuna_dashboard

    url, secret, _, edit = study
    served = []
    monkeypatch.setattr(optuna_dashboard, "run_server", lambda storage, **kw: served.append(kw["artifact_store"]))
    edit(artifact_dir=str(secret))
    code, err = _run(capsys, "dashboard", "--storage", url)
    assert code == 2 and err.count("\n") == 1 and "its saved setting artifact_dir" in err and "--artifact-dir" in err
    assert served == []
    code, err = _run(capsys, "dashboard", "--storage", url, "--artifact-dir", "mine")
    assert code == 0 and len(served) == 1
