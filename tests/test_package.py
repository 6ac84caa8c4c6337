import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: Distributions whose module is not named after them.
MODULE_OF = {"scikit-learn": "sklearn"}


def test_import_does_not_import_torch():
    code = (
        "import sys, optuna_nas, optuna_nas.spaces, optuna_nas.samplers, optuna_nas.objectives, "
        "optuna_nas.cli, optuna_nas.analysis; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_heavy_dependencies_are_imported_only_when_used():
    heavy = ["torch", "torchvision", "mlflow", "matplotlib", "plotly", "optuna_dashboard", "onnx", "sklearn"]
    code = (
        "import sys, optuna_nas, optuna_nas.spaces, optuna_nas.samplers, optuna_nas.objectives, optuna_nas.cli, "
        f"optuna_nas.analysis, optuna_nas.tracking, optuna_nas.cli._dashboard; print([m for m in {heavy} "
        "if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _modules(requirements):
    names = {re.match(r"[A-Za-z0-9_.-]+", r).group(0).lower() for r in requirements}
    return {MODULE_OF.get(n, n.replace("-", "_")) for n in names}


def _imports():
    """Top-level names the package imports: at module level, and anywhere."""
    at_module_level, anywhere = set(), set()
    for path in (ROOT / "optuna_nas").rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = {node.module.split(".")[0]}
            else:
                continue
            anywhere |= names
            if node in tree.body:
                at_module_level |= names
    outside = set(sys.stdlib_module_names) | {"__future__", "optuna_nas"}
    return at_module_level - outside, anywhere - outside


def test_declared_dependencies_are_what_the_package_imports():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11 and later
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    required = _modules(project["dependencies"])
    extras = _modules(r for extra, rs in project["optional-dependencies"].items() if extra != "dev" for r in rs)
    at_module_level, anywhere = _imports()
    assert anywhere - required - extras == set(), "imported but not declared"
    assert required - anywhere == set(), "declared but never imported"
    assert at_module_level - required == set(), "an optional dependency imported at module level"
