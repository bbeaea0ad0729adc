"""OpenID Connect sign-in against a real identity-provider key endpoint (a JWKS served over
HTTP on loopback): what signs a user in, and every way a token is refused."""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi.testclient import TestClient

from api.app import create_app
from vault.access import identity
from vault.actors import Actor, Role
from vault.config import Settings
from vault.ledger.custody import Action
from vault.errors import ConfigError, Unauthenticated
from vault.access.oidc import OidcVerifier
from vault.vault import Vault

ISSUER = "https://login.example.gov.uk/tenant/v2.0"
AUDIENCE = "evidence-vault"
ADMIN = Actor(user="admin", role=Role.ADMINISTRATOR)


@dataclass
class IdentityProvider:
    """Signs tokens as a provider would and publishes its public keys at ``jwks_url``."""

    jwks_url: str
    base_url: str = ""
    keys: dict[str, rsa.RSAPrivateKey] = field(default_factory=dict)
    fetches: int = 0

    def add_key(self, kid: str) -> None:
        self.keys[kid] = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def jwks(self) -> dict[str, Any]:
        out = []
        for kid, key in self.keys.items():
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            out.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})
        return {"keys": out}

    def token(self, *, kid: str = "k1", key: rsa.RSAPrivateKey | None = None,
              alg: str = "RS256", **claims: Any) -> str:
        now = int(time.time())
        body = {"iss": ISSUER, "aud": AUDIENCE, "sub": "00u-khan", "iat": now, "nbf": now,
                "exp": now + 600, "preferred_username": "khan", **claims}
        body = {k: v for k, v in body.items() if v is not None}
        return jwt.encode(body, key or self.keys[kid], algorithm=alg, headers={"kid": kid})


@pytest.fixture
def idp() -> Iterator[IdentityProvider]:
    provider = IdentityProvider(jwks_url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            if self.path == "/.well-known/openid-configuration":
                document = {"issuer": provider.base_url, "jwks_uri": provider.jwks_url}
                body = json.dumps(document).encode()
            else:
                provider.fetches += 1
                body = json.dumps(provider.jwks()).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    provider.base_url = f"http://127.0.0.1:{server.server_port}"
    provider.jwks_url = provider.base_url + "/jwks"
    provider.add_key("k1")
    try:
        yield provider
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def verifier(idp: IdentityProvider) -> OidcVerifier:
    return OidcVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url=idp.jwks_url,
                        refresh_cooldown_s=0)


@pytest.fixture
def people(vault: Vault) -> Vault:
    identity.create_user(vault, name="khan", role=Role.ASB_OFFICER, organisation="Northgate",
                         sites=["Riverside"], actor=ADMIN)
    identity.create_user(vault, name="left", role=Role.ASB_OFFICER, organisation="Northgate",
                         sites=[], actor=ADMIN)
    identity.set_active(vault, "left", False, actor=ADMIN)
    identity.link_oidc(vault, "khan", issuer=ISSUER, subject="00u-khan", actor=ADMIN)
    identity.link_oidc(vault, "left", issuer=ISSUER, subject="00u-left", actor=ADMIN)
    return vault


def _denials(vault: Vault) -> list[str]:
    return [e.event.details["reason"] for e in vault.ledger.events(action=Action.ACCESS_DENIED)]


def test_a_valid_provider_token_signs_in_the_vault_user(people: Vault, idp: IdentityProvider,
                                                        verifier: OidcVerifier) -> None:
    principal = identity.authenticate(people, idp.token(jti="abc"), oidc=verifier)
    assert (principal.name, principal.role) == ("khan", Role.ASB_OFFICER)
    assert principal.token_id == "oidc:abc"
    # Vault API tokens still work beside it.
    issued = identity.issue_token(people, "khan", actor=ADMIN)
    assert identity.authenticate(people, issued.token, oidc=verifier).name == "khan"


def _other_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda p: p.token(exp=int(time.time()) - 3600), "oidc-expired"),
        (lambda p: p.token(aud="another-app"), "oidc-invalid"),
        (lambda p: p.token(iss="https://evil.example/"), "oidc-invalid"),
        (lambda p: p.token(key=_other_key()), "oidc-invalid"),  # right kid, wrong key
        (lambda p: p.token(kid="k9", key=_other_key()), "oidc-invalid"),  # unknown key
        (lambda p: p.token(sub=None), "oidc-invalid"),
        (lambda p: p.token(preferred_username=None, sub="00u-nobody"), "oidc-unknown-user"),
        (lambda p: p.token(nbf=int(time.time()) + 3600), "oidc-invalid"),
        (lambda p: p.token(preferred_username="stranger", sub="00u-x"), "oidc-unknown-user"),
        (lambda p: p.token(preferred_username="left", sub="00u-left"), "disabled"),
    ],
    ids=["expired", "audience", "issuer", "forged", "unknown-key", "no-sub", "no-name",
         "not-yet", "unknown-user", "disabled-user"],
)
def test_refused_tokens_are_refused_and_logged(people: Vault, idp: IdentityProvider,
                                               verifier: OidcVerifier, make: Any,
                                               reason: str) -> None:
    with pytest.raises(Unauthenticated):
        identity.authenticate(people, make(idp), oidc=verifier, client_addr="10.0.0.9")
    assert _denials(people)[-1] == f"authentication: {reason}"


def test_algorithm_tricks_are_refused(people: Vault, idp: IdentityProvider,
                                      verifier: OidcVerifier) -> None:
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "x", "exp": now + 600,
              "preferred_username": "khan"}
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": "k1"})
    # HS256 keyed with the provider's *public* key: the classic key-confusion forgery.
    public_pem = idp.keys["k1"].public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    import hashlib
    import hmac

    header = jwt.utils.base64url_encode(json.dumps({"alg": "HS256", "kid": "k1",
                                                    "typ": "JWT"}).encode())
    payload = jwt.utils.base64url_encode(json.dumps(claims).encode())
    signature = jwt.utils.base64url_encode(
        hmac.new(public_pem, header + b"." + payload, hashlib.sha256).digest())
    confused = (header + b"." + payload + b"." + signature).decode()
    for token in (unsigned, confused):
        with pytest.raises(Unauthenticated):
            identity.authenticate(people, token, oidc=verifier)


def test_provider_key_rotation_is_followed(people: Vault, idp: IdentityProvider,
                                           verifier: OidcVerifier) -> None:
    assert identity.authenticate(people, idp.token(), oidc=verifier).name == "khan"
    assert idp.fetches == 1
    assert identity.authenticate(people, idp.token(), oidc=verifier).name == "khan"
    assert idp.fetches == 1  # keys are cached
    idp.add_key("k2")
    assert identity.authenticate(people, idp.token(kid="k2"), oidc=verifier).name == "khan"
    assert idp.fetches == 2


def test_an_unreachable_provider_is_a_clear_refusal(people: Vault) -> None:
    down = OidcVerifier(issuer=ISSUER, audience=AUDIENCE, jwks_url="http://127.0.0.1:9/jwks",
                        timeout_s=2)
    token = jwt.encode({"sub": "x"}, _other_key(), algorithm="RS256", headers={"kid": "k1"})
    with pytest.raises(Unauthenticated, match="cannot fetch the identity provider's keys"):
        identity.authenticate(people, token, oidc=down)


def test_without_oidc_a_jwt_is_just_a_malformed_token(people: Vault,
                                                      idp: IdentityProvider) -> None:
    with pytest.raises(Unauthenticated, match="malformed"):
        identity.authenticate(people, idp.token())


def test_settings(tmp_path: Any) -> None:
    assert OidcVerifier.from_settings(Settings(home=tmp_path)) is None
    with pytest.raises(ConfigError, match="oidc_audience"):
        OidcVerifier.from_settings(Settings(home=tmp_path, oidc_issuer=ISSUER))
    with pytest.raises(ConfigError, match="not allowed"):
        OidcVerifier.from_settings(Settings(home=tmp_path, oidc_issuer=ISSUER,
                                            oidc_audience=AUDIENCE, oidc_algorithms=["HS256"]))
    default = OidcVerifier.from_settings(
        Settings(home=tmp_path, oidc_issuer=ISSUER + "/", oidc_audience=AUDIENCE))
    assert default is not None


def test_the_api_takes_provider_tokens(people: Vault, idp: IdentityProvider) -> None:
    settings = people.settings.model_copy(update={
        "oidc_issuer": ISSUER, "oidc_audience": AUDIENCE, "oidc_jwks_url": idp.jwks_url})
    with TestClient(create_app(settings, vault=people)) as client:
        me = client.get("/me", headers={"Authorization": f"Bearer {idp.token()}"})
        assert me.status_code == 200, me.text
        assert me.json()["name"] == "khan"
        bad = client.get("/me", headers={"Authorization": f"Bearer {idp.token(aud='x')}"})
        assert bad.status_code == 401


def test_keys_are_found_through_the_issuers_discovery_document(people: Vault,
                                                               idp: IdentityProvider) -> None:
    discovered = OidcVerifier(issuer=idp.base_url, audience=AUDIENCE)
    identity.link_oidc(people, "khan", issuer=idp.base_url, subject="00u-khan", actor=ADMIN)
    token = idp.token(iss=idp.base_url)
    assert identity.authenticate(people, token, oidc=discovered).name == "khan"
    # A discovery document for another issuer is not believed.
    wrong = OidcVerifier(issuer=idp.base_url + "/other", audience=AUDIENCE)
    with pytest.raises(Unauthenticated, match="describes another issuer"):
        identity.authenticate(people, idp.token(iss=idp.base_url + "/other"), oidc=wrong)


# --- issue #11 finding 10: accounts are bound by issuer + subject, not by a username claim ---


def test_a_changed_username_claim_cannot_take_over_another_user(
    people: Vault, idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    """Issue #11 finding 10: users were matched by ``preferred_username``, which an account
    holder or provider admin can change. Another account renamed to "khan" is refused (and the
    denial names khan as the target); khan's own account renamed to "admin" is still khan."""
    with pytest.raises(Unauthenticated, match="not the account linked to user 'khan'"):
        identity.authenticate(people, idp.token(sub="00u-mallory", preferred_username="khan"),
                              oidc=verifier)
    (denial,) = people.ledger.events(action=Action.ACCESS_DENIED)
    assert denial.event.details["reason"] == "authentication: oidc-subject-mismatch"
    assert list(denial.event.object_ids) == [identity.get_user(people, "khan").id]
    identity.create_user(people, name="admin", role=Role.ADMINISTRATOR, organisation="Northgate",
                         actor=ADMIN)
    renamed = idp.token(sub="00u-khan", preferred_username="admin")
    assert identity.authenticate(people, renamed, oidc=verifier).name == "khan"


def test_an_unlinked_account_is_refused_with_what_to_do(
    people: Vault, idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    """Issue #11 finding 10: a vault user with no link does not sign in by name alone; the
    refusal tells the administrator the exact command that links the account."""
    identity.create_user(people, name="patel", role=Role.IG_OFFICER, organisation="Northgate",
                         actor=ADMIN)
    with pytest.raises(Unauthenticated) as info:
        identity.authenticate(people, idp.token(sub="00u-patel", preferred_username="patel"),
                              oidc=verifier)
    assert info.value.reason == "oidc-unlinked"
    assert f"admin user link-oidc patel --issuer {ISSUER} --subject 00u-patel" in str(info.value)


def test_a_first_use_bind_binds_once_and_then_only_the_subject_matches(
    people: Vault, idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    """Issue #11 finding 10: an administrator may allow one first-use bind by username claim;
    it binds the first account that uses it (a custody event), and from then on only that
    subject signs the user in, whatever the claim says."""
    identity.create_user(people, name="patel", role=Role.IG_OFFICER, organisation="Northgate",
                         actor=ADMIN)
    identity.allow_oidc_bind(people, "patel", issuer=ISSUER, actor=ADMIN)
    first = identity.authenticate(
        people, idp.token(sub="00u-patel", preferred_username="patel"), oidc=verifier)
    assert first.name == "patel"
    changes = [e.event.details for e in people.ledger.events(action=Action.USER_CHANGED)]
    assert (changes[-2]["change"], changes[-2]["issuer"]) == ("oidc_bind_allowed", ISSUER)
    assert changes[-1]["change"] == "oidc_bound" and changes[-1]["subject"] == "00u-patel"
    # Used up: a second account with the same claim is refused, not bound.
    with pytest.raises(Unauthenticated) as info:
        identity.authenticate(people, idp.token(sub="00u-other", preferred_username="patel"),
                              oidc=verifier)
    assert info.value.reason == "oidc-subject-mismatch"
    renamed = idp.token(sub="00u-patel", preferred_username="patel.new")
    assert identity.authenticate(people, renamed, oidc=verifier).name == "patel"
    (link, name), = identity.list_oidc_links(people, "patel")
    assert (name, link.subject, link.bind_until) == ("patel", "00u-patel", None)
    assert link.bound_at is not None


def test_an_expired_allowance_binds_nothing(
    people: Vault, idp: IdentityProvider, verifier: OidcVerifier
) -> None:
    """Issue #11 finding 10: a first-use allowance lasts only as long as the admin said."""
    identity.create_user(people, name="patel", role=Role.IG_OFFICER, organisation="Northgate",
                         actor=ADMIN)
    identity.allow_oidc_bind(people, "patel", issuer=ISSUER, actor=ADMIN,
                             valid_for=dt.timedelta(minutes=1))
    clock = people.clock
    people.clock = lambda: clock() + dt.timedelta(minutes=5)  # type: ignore[method-assign]
    with pytest.raises(Unauthenticated) as info:
        identity.authenticate(people, idp.token(sub="00u-patel", preferred_username="patel"),
                              oidc=verifier)
    assert info.value.reason == "oidc-unlinked"


def test_link_rules(people: Vault) -> None:
    """Issue #11 finding 10: one subject belongs to one user; a linked user needs an unlink
    before a new first-use bind; unlinking is logged; bad input is refused clearly."""
    from vault.errors import InvalidInput, NotFound

    identity.create_user(people, name="patel", role=Role.IG_OFFICER, organisation="Northgate",
                         actor=ADMIN)
    with pytest.raises(InvalidInput, match="already linked to user 'khan'"):
        identity.link_oidc(people, "patel", issuer=ISSUER, subject="00u-khan", actor=ADMIN)
    with pytest.raises(InvalidInput, match="unlink it first"):
        identity.allow_oidc_bind(people, "khan", issuer=ISSUER, actor=ADMIN)
    with pytest.raises(InvalidInput, match="issuer"):
        identity.link_oidc(people, "patel", issuer="not a url", subject="x", actor=ADMIN)
    with pytest.raises(InvalidInput, match="subject"):
        identity.link_oidc(people, "patel", issuer=ISSUER, subject="", actor=ADMIN)
    identity.unlink_oidc(people, "khan", issuer=ISSUER, actor=ADMIN)
    with pytest.raises(NotFound):
        identity.unlink_oidc(people, "khan", issuer=ISSUER, actor=ADMIN)
    last = people.ledger.events(action=Action.USER_CHANGED)[-1].event.details
    assert (last["change"], last["subject"]) == ("oidc_unlinked", "00u-khan")


def test_admin_cli_links_and_lists(tmp_path: Any) -> None:
    """Issue #11 finding 10: ``admin user link-oidc / allow-oidc / oidc-links / unlink-oidc``."""
    from typer.testing import CliRunner

    from api.cli import app

    runner = CliRunner()
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home"), "EVIDENCE_VAULT_OIDC_ISSUER": ISSUER,
           "EVIDENCE_VAULT_OIDC_AUDIENCE": AUDIENCE}

    def run(*args: str) -> Any:
        result = runner.invoke(app, list(args), env=env)
        assert result.exit_code == 0, result.output
        return result

    run("init")
    run("admin", "user", "add", "khan", "--role", "asb_officer", "--org", "Northgate")
    run("admin", "user", "add", "patel", "--role", "ig_officer", "--org", "Northgate")
    assert "linked to subject 00u-khan" in run("admin", "user", "link-oidc", "khan",
                                              "--subject", "00u-khan").stdout
    assert "binds that account" in run("admin", "user", "allow-oidc", "patel",
                                       "--within", "2d").stdout
    listed = json.loads(run("admin", "user", "oidc-links", "--json").stdout)
    assert [(d["user"], d["subject"]) for d in listed] == [("khan", "00u-khan"), ("patel", None)]
    run("admin", "user", "unlink-oidc", "khan")
    refused = runner.invoke(app, ["admin", "user", "allow-oidc", "patel", "--within", "90d"],
                            env=env)
    assert refused.exit_code != 0 and "31 days" in refused.output
