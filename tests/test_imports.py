"""The package's layering, read from its source: which subpackage imports which.

Rules: no cycle between the subpackages (``optuna_nas.spaces``, ``optuna_nas.models``, ...; a module
directly in ``optuna_nas`` counts as its own node), and no import of another subpackage's private
module (``optuna_nas.<package>._<module>`` from outside ``<package>``). The root package's own private
modules (``optuna_nas._validation``, ...) are its shared internals and may be imported anywhere in it.
Every import counts, including those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import pathlib

import optuna_nas

PACKAGE = pathlib.Path(optuna_nas.__file__).parent


def _module_name(path: pathlib.Path) -> str:
    parts = ["optuna_nas", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: pathlib.Path) -> set[str]:
    """Every ``optuna_nas`` module or name the file imports, as dotted names."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            found.update(f"{base}.{alias.name}" for alias in node.names)
            found.add(base)
    return {name for name in found if name == "optuna_nas" or name.startswith("optuna_nas.")}


def _owner(dotted: str) -> str | None:
    """The subpackage (or root-level module, private ones included) a dotted name belongs to; None
    for the root package itself."""
    parts = dotted.split(".")
    return parts[1] if len(parts) >= 2 else None


def _graph() -> dict[str, dict[str, set[str]]]:
    """importer subpackage -> imported subpackage -> the modules that import it (for messages)."""
    edges: dict[str, dict[str, set[str]]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        source = _owner(module)
        if source is None:
            continue
        for name in _imports(path):
            target = _owner(name)
            if target is not None and target != source:
                edges.setdefault(source, {}).setdefault(target, set()).add(module)
    return edges


def test_no_module_imports_another_subpackages_private_module():
    offences = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        for name in _imports(path):
            parts = name.split(".")
            private = next((i for i, part in enumerate(parts[2:], start=2) if part.startswith("_")), None)
            if private is None or parts[1].startswith("_"):
                continue
            owner = ".".join(parts[:2])
            if not (module == owner or module.startswith(owner + ".")):
                offences.append(f"{module} imports {name}")
    assert offences == []


def test_subpackages_import_each_other_without_cycles():
    edges = _graph()
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for target in sorted(edges.get(node, {})):
            if target in path:
                cycle = [*path[path.index(target) :], target]
                cycles.append(" -> ".join(cycle) + f" (via {sorted(edges[node][target])})")
            elif len(path) < len(edges) + 1:
                visit(target, [*path, target])

    for start in sorted(edges):
        visit(start, [start])
    assert cycles == []


def test_the_walk_sees_the_imports_it_judges():
    # A check that finds nothing because it reads nothing would pass: the known layering shows up.
    edges = _graph()
    assert "spaces" in edges["models"]
    assert "training" in edges["objectives"]
    assert "training" in edges["analysis"]
    assert "spaces" in edges["cli"]
    assert "optuna_nas._validation" in _imports(PACKAGE / "models" / "_registry.py")
    assert "_registry" in edges["samplers"]  # the root's internals are nodes too: they may not import back
