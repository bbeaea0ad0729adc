"""Issue #12: the administrator's recovery path for web sign-in (admin user set-password and
reset-2fa)."""

from __future__ import annotations

from pathlib import Path

import pyotp
import typer
from typer.testing import CliRunner

from api.cli.admin import admin_app
from vault.access import credentials, identity
from vault.actors import Actor, Role
from vault.config import Settings
from vault.vault import Vault

app = typer.Typer()
app.add_typer(admin_app, name="admin")
OPERATOR = Actor(user="local:test", role=Role.ADMINISTRATOR, organisation="N")


def test_set_password_and_reset_2fa(tmp_path: Path) -> None:
    """Issue #12: an administrator sets a password (from stdin for scripts; a weak one is
    refused with the rule and exit status 8) and resets a lost authenticator."""
    settings = Settings(home=tmp_path / "home")
    with Vault.init(settings) as vault:
        user = identity.create_user(vault, name="jo", role=Role.ASB_OFFICER, organisation="N",
                                    actor=OPERATOR)
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home")}
    runner = CliRunner()
    weak = runner.invoke(app, ["admin", "user", "set-password", "jo", "--password-stdin"],
                         input="short\n", env=env)
    assert weak.exit_code == 8 and "12-1024 characters" in weak.output
    done = runner.invoke(app, ["admin", "user", "set-password", "jo", "--password-stdin"],
                         input="a long pass phrase\n", env=env)
    assert done.exit_code == 0, done.output
    with Vault.open(settings) as vault:
        assert credentials.check_password(vault, "jo", "a long pass phrase").name == "jo"
        secret = credentials.begin_enrolment(vault, user.id, issuer="t").secret
        credentials.check_code(vault, user.id, pyotp.TOTP(secret).now(), enrolling=True)
        assert credentials.check_password(vault, "jo", "a long pass phrase").enrolled
    reset = runner.invoke(app, ["admin", "user", "reset-2fa", "jo"], env=env)
    assert reset.exit_code == 0, reset.output
    with Vault.open(settings) as vault:
        assert not credentials.check_password(vault, "jo", "a long pass phrase").enrolled
    unknown = runner.invoke(app, ["admin", "user", "reset-2fa", "nobody"], env=env)
    assert unknown.exit_code == 3
