"""Web sign-in through the organisation's OpenID Connect provider: the authorization code flow
with PKCE (OpenID Connect Core 1.0 section 3.1; RFC 7636 S256).

The provider authenticates the person (with its own second factor); the vault then decides
exactly as for an API caller: the ID token goes through :func:`vault.access.identity.authenticate`,
so the signature, issuer, audience, expiry and the issuer + subject link to a vault user
(``admin user link-oidc``) are checked by the same code, and a refusal is the same
``access_denied`` event. The flow adds:

1. ``state`` (CSRF of the redirect), ``nonce`` (binds the ID token to this browser's request)
   and the PKCE ``code_verifier``, 256 random bits each, kept in an HttpOnly cookie scoped to
   the callback path for :data:`PENDING_MAX_AGE`; the callback refuses a ``state`` that is not
   the cookie's (a login CSRF) and an ID token whose ``nonce`` is not the cookie's (a replayed
   or injected token).
2. The code is exchanged at the token endpoint with the client secret (HTTP Basic) and the
   verifier, so a stolen code is useless to anyone else.
3. The endpoints come from the issuer's discovery document, which must name that issuer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import urllib.parse
from dataclasses import dataclass
from typing import Any

import httpx
import jwt

from vault.config import Settings
from vault.errors import Unauthenticated

PENDING_COOKIE = "ev_oidc"
PENDING_PATH = "/sign-in/oidc"
PENDING_MAX_AGE = 600
CALLBACK = "/sign-in/oidc/callback"
SCOPE = "openid profile"
_TIMEOUT = 10.0


@dataclass(frozen=True)
class Pending:
    """What the browser's cookie holds between the redirect and the callback (check 1)."""

    state: str
    nonce: str
    verifier: str
    next_path: str

    def to_cookie(self) -> str:
        return ".".join((self.state, self.nonce, self.verifier,
                         base64.urlsafe_b64encode(self.next_path.encode()).decode()))

    @classmethod
    def from_cookie(cls, value: str | None) -> Pending | None:
        parts = (value or "").split(".")
        if len(parts) != 4 or not all(parts[:3]):
            return None
        try:
            next_path = base64.urlsafe_b64decode(parts[3].encode()).decode()
        except (ValueError, UnicodeDecodeError):
            return None
        return cls(parts[0], parts[1], parts[2], next_path)


def _challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class OidcClient:
    """The vault as an OpenID Connect relying party (a confidential client)."""

    def __init__(self, issuer: str, client_id: str, client_secret: str,
                 public_url: str | None = None) -> None:
        self.issuer = issuer
        self.client_id = client_id
        self._secret = client_secret
        self.public_url = public_url.rstrip("/") if public_url else None
        self._endpoints: dict[str, str] | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcClient | None:
        """The client, or None when the web app is not set up for OIDC sign-in."""
        if not (settings.oidc_issuer and settings.oidc_audience and settings.web_oidc_client_secret):
            return None
        return cls(settings.oidc_issuer, settings.oidc_audience,
                   settings.web_oidc_client_secret.get_secret_value(), settings.web_public_url)

    def redirect_uri(self, request_base: str) -> str:
        """The callback address: ``web_public_url`` if set, else the request's own base."""
        return (self.public_url or request_base.rstrip("/")) + CALLBACK

    def _discover(self) -> dict[str, str]:
        """Check 3: the authorization and token endpoints. Raises Unauthenticated."""
        with self._lock:
            if self._endpoints is not None:
                return self._endpoints
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            document: Any = httpx.get(url, timeout=_TIMEOUT).raise_for_status().json()
        except (httpx.HTTPError, ValueError):
            raise Unauthenticated("the identity provider cannot be reached; try again, or "
                                  "sign in with your vault password", reason="oidc-discovery") from None
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise Unauthenticated(f"{url} describes another issuer", reason="oidc-discovery")
        endpoints = {k: str(document[k]) for k in ("authorization_endpoint", "token_endpoint")
                     if isinstance(document.get(k), str)}
        if len(endpoints) != 2:
            raise Unauthenticated(f"{url} names no authorization or token endpoint",
                                  reason="oidc-discovery")
        with self._lock:
            self._endpoints = endpoints
        return endpoints

    def start(self, redirect_uri: str, next_path: str) -> tuple[str, Pending]:
        """The provider's authorization URL to send the browser to, and what to remember."""
        pending = Pending(secrets.token_urlsafe(32), secrets.token_urlsafe(32),
                          secrets.token_urlsafe(48), next_path)
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.client_id, "redirect_uri": redirect_uri,
            "scope": SCOPE, "state": pending.state, "nonce": pending.nonce,
            "code_challenge": _challenge(pending.verifier), "code_challenge_method": "S256",
        })
        endpoint = self._discover()["authorization_endpoint"]
        return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}", pending

    def finish(self, pending: Pending | None, *, state: str | None, code: str | None,
               error: str | None, redirect_uri: str) -> str:
        """The ID token for the callback's ``code`` (checks 1 and 2). Raises Unauthenticated
        (``oidc-state``, ``oidc-error``, ``oidc-token``)."""
        if pending is None or not state or not hmac.compare_digest(state, pending.state):
            raise Unauthenticated("this sign-in was not started from this browser, or took too "
                                  "long: start again", reason="oidc-state")
        if error or not code:
            raise Unauthenticated(f"the identity provider did not sign you in ({(error or 'no code')[:64]})",
                                  reason="oidc-error")
        try:
            answer = httpx.post(
                self._discover()["token_endpoint"],
                data={"grant_type": "authorization_code", "code": code,
                      "redirect_uri": redirect_uri, "code_verifier": pending.verifier},
                auth=(self.client_id, self._secret), timeout=_TIMEOUT,
            )
            body: Any = answer.json()
        except (httpx.HTTPError, ValueError):
            raise Unauthenticated("the identity provider's token service did not answer",
                                  reason="oidc-token") from None
        token = body.get("id_token") if isinstance(body, dict) else None
        if answer.status_code != 200 or not isinstance(token, str):
            raise Unauthenticated("the identity provider refused to complete the sign-in",
                                  reason="oidc-token")
        return token

    @staticmethod
    def check_nonce(id_token: str, pending: Pending) -> None:
        """Check 1: the token was issued for this browser's request. Call it only after the
        token's signature was verified. Raises Unauthenticated (``oidc-nonce``)."""
        try:
            claims = jwt.decode(id_token, options={"verify_signature": False})
        except jwt.PyJWTError:
            claims = {}
        nonce = claims.get("nonce")
        if not isinstance(nonce, str) or not hmac.compare_digest(nonce, pending.nonce):
            raise Unauthenticated("the identity provider's answer was not for this sign-in",
                                  reason="oidc-nonce")


__all__ = ["CALLBACK", "PENDING_COOKIE", "OidcClient", "Pending"]
