"""The public surface: ``redaction.__all__`` is sorted, complete and importable."""

from __future__ import annotations

import redaction


def test_all_is_sorted_and_importable() -> None:
    assert redaction.__all__ == sorted(redaction.__all__)
    for name in redaction.__all__:
        assert getattr(redaction, name) is not None


def test_every_public_name_is_exported() -> None:
    import types

    public = {n for n, v in vars(redaction).items()
              if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == set(redaction.__all__)


def test_errors_are_vault_errors() -> None:
    from vault.errors import VaultError

    for cls in (redaction.MediaError, redaction.PlanError, redaction.EncodeError):
        assert issubclass(cls, redaction.RedactionError)
    assert issubclass(redaction.RedactionError, VaultError)
