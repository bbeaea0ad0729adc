"""Each package's __all__ is honest: sorted, importable, and naming only public objects."""

from __future__ import annotations

import importlib

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
