"""The layout's one-way arrows, checked by walking every import (top level and inside functions).

The rules are the ones the package docstrings state (``sync/__init__.py``, ``adapters/__init__.py``,
``sandbox/__init__.py``); this test keeps them true as the code grows.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
ERROR_TREE = "adapters.errors"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[str, int, str | None]]:
    """(imported module, line, enclosing function or None) for every import in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found: list[tuple[str, int, str | None]] = []

    def visit(node: ast.AST, function: str | None) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                visit(child, child.name)
                continue
            if isinstance(child, ast.Import):
                found.extend((alias.name, child.lineno, function) for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[:len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                found.append((base, child.lineno, function))
                # "from sync import metrics" imports the module sync.metrics
                found.extend((f"{base}.{alias.name}", child.lineno, function) for alias in child.names)
            visit(child, function)

    visit(tree, None)
    return found


def modules(folder: str) -> list[Path]:
    return sorted(p for p in (REPO / folder).rglob("*.py") if "__pycache__" not in p.parts)


def _is(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def violations(folder: str, forbidden: list[str], allowed: tuple[str, ...] = ()) -> list[str]:
    bad = []
    for path in modules(folder):
        for name, line, _ in imports_of(path):
            if any(_is(name, f) for f in forbidden) and not any(_is(name, a) for a in allowed):
                bad.append(f"{path.relative_to(REPO)}:{line} imports {name}")
    return bad


def test_imports_are_seen_inside_functions_and_from_packages():
    """The walker itself: a lazy import inside a function and ``from pkg import module`` count."""
    sample = REPO / "sync" / "cli.py"
    names = {name for name, _, _ in imports_of(sample)}
    assert "sandbox.suite" in names  # imported inside the sandbox command
    assert "sync.ops.logs" in names


def test_adapters_know_nothing_of_the_daemon_the_store_or_the_mappings():
    assert violations("adapters", ["sync", "state", "mappings", "sandbox"]) == []


def test_capture_imports_no_adapter_and_no_job():
    assert violations("sync/capture", ["adapters", "sync.jobs", "sync.reports", "mappings", "sandbox"],
                      allowed=(ERROR_TREE,)) == []


def test_reports_read_the_store_and_the_journey_never_an_adapter():
    assert violations("sync/reports", ["adapters", "sync.jobs", "sync.ops", "mappings", "sandbox"],
                      allowed=(ERROR_TREE,)) == []


def test_journey_is_computation_only():
    assert violations("sync/journey", ["adapters", "sync.jobs", "sync.reports", "sync.ops", "mappings", "sandbox"],
                      allowed=(ERROR_TREE,)) == []


def test_ops_and_state_and_mappings_keep_their_arrows():
    assert violations("sync/ops", ["sync.jobs", "sync.capture", "sync.reports", "sandbox"]) == []
    assert violations("state", ["sync", "adapters", "mappings", "sandbox"]) == []
    assert violations("mappings", ["sync", "state", "sandbox"]) == []


def test_sandbox_imports_nothing_of_closedloop():
    assert violations("sandbox", ["sync", "adapters", "mappings", "state"]) == []


def test_only_the_demo_and_the_sandbox_command_import_the_sandbox():
    users = []
    for folder in ("sync", "adapters", "mappings", "state"):
        for path in modules(folder):
            for name, line, function in imports_of(path):
                if _is(name, "sandbox"):
                    users.append((str(path.relative_to(REPO)), function))
    assert users, "the walker found no sandbox import at all"
    assert {(path, function) for path, function in users if path != "sync/demo.py"} == {("sync/cli.py", "sandbox")}


@pytest.mark.parametrize("room", ["capture", "journey", "jobs", "reports", "ops"])
def test_each_room_says_what_it_owns_and_may_import(room):
    doc = ast.get_docstring(ast.parse((REPO / "sync" / room / "__init__.py").read_text()))
    assert doc and "import" in doc


def test_sync_itself_holds_at_most_six_modules():
    own = sorted(p.name for p in (REPO / "sync").glob("*.py"))
    assert len(own) <= 6, own
    assert not (REPO / "sync" / "ga4.py").exists() and (REPO / "adapters" / "ga4.py").exists()


def test_benchmarks_have_no_import_circle():
    assert violations("bench", ["bench.__main__"]) == []
