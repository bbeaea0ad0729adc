"""Each package's __all__ is honest: sorted, importable, and naming only public objects."""

from __future__ import annotations

import ast
import graphlib
import importlib
from pathlib import Path

import pytest

PACKAGES = ["vault", "redaction", "ingest"]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_importable(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported, f"{name}/__init__.py must declare __all__"
    assert list(exported) == sorted(exported), f"{name}.__all__ is not sorted"
    assert len(set(exported)) == len(exported)
    for attr in exported:
        assert not attr.startswith("_")
        assert hasattr(module, attr), f"{name}.__all__ names {attr}, which it does not define"


def test_vault_imports_nothing_from_the_layers_above() -> None:
    import sys
    import subprocess

    code = "import sys, vault; bad = [m for m in sys.modules if m.split('.')[0] in ('api', 'ingest', 'redaction')]; print(bad); sys.exit(bool(bad))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# --- layers (issue #14) --------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
TOP_PACKAGES = ("vault", "ingest", "redaction", "api")

# Bottom to top. A module may import from its own layer and the layers below it, never above;
# a module belongs to the layer of the longest name here that it starts with.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("vault.errors", "vault.config", "vault.actors", "vault.localtime", "vault.plaintext",
     "vault._home"),
    ("vault.storage",),
    ("vault.ledger",),
    ("vault.vault", "vault.capture", "vault.ending"),
    ("vault.access",),
    ("vault.casework",),
    ("vault",),  # vault/__init__.py: the public surface, re-exporting the layers below
    ("ingest", "redaction"),
    ("api",),
)


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {
        _module_name(p): p
        for package in TOP_PACKAGES
        for p in sorted((ROOT / package).rglob("*.py"))
        if "migrations" not in p.parts
    }


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module of ours ``name`` imports, anywhere in it (top level, in functions, under
    TYPE_CHECKING): read with ast, nothing is imported."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # "from pkg import sub" depends on the submodule, not on pkg/__init__.py.
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in known else module
                       for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _layer(module: str) -> int:
    best, rank = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    assert rank >= 0, f"{module} is in no layer: add it to LAYERS in tests/test_public_api.py"
    return rank


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    """``importer -> imported`` for every import that points up the layers."""
    return sorted(
        f"{importer} -> {imported}"
        for importer, targets in graph.items()
        for imported in targets
        if _layer(imported) > _layer(importer)
    )


def import_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle among our modules (lazy and type-only imports included), or None."""
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        return list(err.args[1])
    return None


def test_every_import_points_down_the_layers() -> None:
    """Issue #14: the file list draws the layers and no import runs against them."""
    assert layer_violations(_graph()) == []


def test_no_import_cycle_in_any_package() -> None:
    """Issue #14: vault.py, holds.py and retention.py imported each other in a circle, hidden
    behind a function-level import; no cycle of any length, lazy or not, is left."""
    assert import_cycle(_graph()) is None


def test_the_layer_checks_catch_a_bad_import() -> None:
    """The two checks above fail on an upward import and on a cycle (so they are not vacuous)."""
    graph = _graph()
    graph["vault.storage.crypto"] = graph["vault.storage.crypto"] | {"vault.casework.holds"}
    assert layer_violations(graph) == ["vault.storage.crypto -> vault.casework.holds"]
    graph["vault.errors"] = graph["vault.errors"] | {"vault.storage.crypto"}
    assert import_cycle(graph) is not None


# Long modules: tests/test_module_size.py (every package, 600 lines, a "Why this module is
# long:" line at the top, the pending ones listed).
