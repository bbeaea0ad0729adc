"""``benchmarks/redaction.py`` as a module, for the benchmarks that reuse its scenes and scores.

It is a script whose name is the package's (``redaction``), so it cannot be imported by name:
it is loaded from its path under another one. One module object per process: every caller
gets the same scenes, constants and dataclasses.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

NAME = "redaction_bench"


def load() -> ModuleType:
    """The loaded ``benchmarks/redaction.py`` (loaded once)."""
    if NAME in sys.modules:
        return sys.modules[NAME]
    spec = importlib.util.spec_from_file_location(NAME, Path(__file__).with_name("redaction.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module
