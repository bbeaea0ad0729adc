"""Issue #12: web sign-in through a real OpenID Provider on loopback (npm ``oidc-provider``,
OpenID Certified, under node), authorization code flow with PKCE, in real headless Chromium.

The provider's development login pages accept any password and make the login name the
account's subject. The vault signs in only the account an administrator linked (issuer +
subject, ``admin user link-oidc``): the same rule and code as for API callers.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import on_ci
from tests.web.conftest import OPERATOR, ORG, Checked, free_port, run_serve
from vault.access import identity
from vault.actors import Role
from vault.config import Settings
from vault.ledger.custody import Action
from vault.vault import Vault

pytestmark = pytest.mark.slow

PROVIDER = Path(os.environ.get(
    "EVIDENCE_VAULT_OIDC_PROVIDER",
    "~/.cache/evidence-vault/npm/node_modules/oidc-provider/lib/index.js")).expanduser()
SCRIPT = Path(__file__).with_name("oidc_provider.mjs")
CLIENT_ID, CLIENT_SECRET = "evidence-vault", "test-client-secret"


@dataclass
class World:
    url: str
    issuer: str
    settings: Settings


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    node = shutil.which("node")
    if node is None or not PROVIDER.exists():
        message = f"node or oidc-provider missing ({PROVIDER}; .ci/run installs it with npm)"
        if on_ci():
            pytest.fail(message)
        pytest.skip(message)
    home = tmp_path_factory.mktemp("oidc") / "home"
    oidc_port, vault_port = free_port(), free_port()  # never the same one twice
    issuer = f"http://127.0.0.1:{oidc_port}"
    proc = subprocess.Popen(
        [node, str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        env={**os.environ, "OIDC_PROVIDER_MODULE": str(PROVIDER), "OIDC_PORT": str(oidc_port),
             "OIDC_CLIENT_ID": CLIENT_ID, "OIDC_CLIENT_SECRET": CLIENT_SECRET,
             "OIDC_REDIRECT_URI": f"http://127.0.0.1:{vault_port}/sign-in/oidc/callback"})
    try:
        line = proc.stdout.readline() if proc.stdout else ""  # "ready <issuer>"
        assert line.startswith("ready"), f"oidc-provider did not start: {line!r}"
        settings = Settings(home=home)
        with Vault.init(settings) as vault:
            for name, subject in (("asb", "asb-at-idp"), ("asb_oak", None)):
                identity.create_user(vault, name=name, role=Role.ASB_OFFICER, organisation=ORG,
                                     sites=["Riverside"], actor=OPERATOR)
                if subject:
                    identity.link_oidc(vault, name, issuer=issuer, subject=subject, actor=OPERATOR)
        with run_serve(home, vault_port, EVIDENCE_VAULT_OIDC_ISSUER=issuer,
                       EVIDENCE_VAULT_OIDC_AUDIENCE=CLIENT_ID,
                       EVIDENCE_VAULT_WEB_OIDC_CLIENT_SECRET=CLIENT_SECRET,
                       EVIDENCE_VAULT_WEB_PUBLIC_URL=f"http://127.0.0.1:{vault_port}") as url:
            yield World(url=url, issuer=issuer, settings=settings)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _through_provider(checked: Checked, world: World, login: str) -> Any:
    page = checked.page
    page.goto(world.url + "/sign-in")
    checked.audit("sign-in-with-provider")  # axe-core and CSP on the page with the button
    page.click("#sign-in-oidc")
    page.wait_for_url(world.issuer + "/**")
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", "anything")
    page.click("button[type=submit]")
    page.wait_for_load_state("load")
    if page.url.startswith(world.issuer):  # the consent page
        page.click("button[type=submit]")
    page.wait_for_url(world.url + "/**")
    return page


@pytest.fixture
def context(browser: Any, axe_source: str) -> Iterator[Any]:
    ctx = browser.new_context()
    ctx.add_init_script(script=axe_source)
    try:
        yield ctx
    finally:
        ctx.close()


def test_an_officer_signs_in_through_the_organisations_provider(context: Any, world: World) -> None:
    """Issue #12: sign-in through a real OpenID provider (code flow, PKCE): the linked account
    lands on the search page with a session cookie, logged as ``web.signed_in`` (oidc)."""
    checked = Checked(context, world)
    page = _through_provider(checked, world, "asb-at-idp")
    assert page.url == world.url + "/find", page.url
    assert page.inner_text(".ev-sign-out").split() == ["Sign", "out", "asb"]
    with Vault.open(world.settings) as vault:
        signed = vault.ledger.events(action="web.signed_in")
    assert signed[-1].event.actor == "asb" and signed[-1].event.details["method"] == "oidc"


def test_an_account_nobody_linked_is_refused_and_logged(context: Any, world: World) -> None:
    """Issue #12: a provider account no administrator linked to a vault user (here one whose
    name matches a vault user's) signs nobody in: a 401 page and an ``access_denied`` event."""
    checked = Checked(context, world)
    page = _through_provider(checked, world, "asb_oak")
    assert "/sign-in/oidc/callback" in page.url
    assert "Sign in again" in page.content()
    assert not [c for c in context.cookies() if c["name"] == "ev_session"]
    with Vault.open(world.settings) as vault:
        denied = vault.ledger.events(action=Action.ACCESS_DENIED.value)
    assert any("oidc" in str(e.event.details.get("reason")) for e in denied)


def test_a_callback_not_started_by_this_browser_is_refused(world: World) -> None:
    """Issue #12 (login CSRF): a callback whose state was not issued to this browser is
    refused (401) and signs nobody in."""
    import httpx

    r = httpx.get(world.url + "/sign-in/oidc/callback", params={"code": "x", "state": "y"})
    assert r.status_code == 401 and "ev_session" not in r.headers.get("set-cookie", "")
