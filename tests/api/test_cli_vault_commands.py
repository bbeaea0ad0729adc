"""The core CLI commands are module-level commands, registered like the others (issue #14)."""

from __future__ import annotations

import inspect

import typer

from api.cli import app, vault_commands


def test_core_commands_are_module_level_and_registered() -> None:
    """Issue #14 item 4: register_vault_commands was one 147-line function defining init, put,
    get and ls inside it; they are now module-level functions (importable, testable, like
    ``fixity_check``) that api/cli/__init__.py registers by name."""
    assert not hasattr(vault_commands, "register_vault_commands")
    registered = {c.name or (c.callback.__name__ if c.callback else ""): c.callback
                  for c in app.registered_commands}
    for name, function in (("init", vault_commands.init), ("put", vault_commands.put),
                           ("get", vault_commands.get), ("ls", vault_commands.list_recordings)):
        assert registered[name] is function
        assert inspect.getmodule(function) is vault_commands
        assert len(inspect.getsource(function).splitlines()) < 60
    assert isinstance(app, typer.Typer)
