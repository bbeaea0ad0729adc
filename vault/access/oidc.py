"""Sign-in through the organisation's identity provider (OpenID Connect): API callers may
present a JWT access or ID token from it instead of a vault API token.

The identity provider (Microsoft Entra ID, Google, Keycloak...) says *who* the caller is; the
vault alone says what they may do. A token is accepted only when

1. it is a JWS signed with one of ``oidc_algorithms`` (never ``none``, never an HMAC that a
   public key could be abused to forge) by a key the provider publishes at ``oidc_jwks_url``
   (fetched on first use and again when a token names a key id not seen yet: provider key
   rotation);
   (or, when that is unset, at the ``jwks_uri`` of the issuer's OpenID discovery document,
   ``<issuer>/.well-known/openid-configuration``, read on first use);
2. its ``iss`` is ``oidc_issuer`` and its ``aud`` includes ``oidc_audience``;
3. it has not expired (``exp``, ``nbf``, ``iat`` within ``oidc_leeway_s``);
4. its issuer and subject (``iss`` + ``sub``, the account's stable identifier) are linked to
   an *active* vault user (vault/access/identity.py: ``admin user link-oidc``), or an administrator
   allowed that user a first-use bind and the ``oidc_username_claim`` (default
   ``preferred_username``) names them. The username claim alone never signs anyone in:
   providers let it change, and say it is not for authorisation (issue #11 finding 10).

Anything else is refused like a bad API token: 401, and an ``access_denied`` custody event.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.request
from dataclasses import dataclass
from typing import Any

import jwt

from vault.config import Settings
from vault.errors import ConfigError

#: Asymmetric JWS algorithms accepted by default (RFC 7518): RSA, RSA-PSS, ECDSA, EdDSA.
DEFAULT_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA")
_SAFE = frozenset({*DEFAULT_ALGORITHMS, "PS384", "PS512", "ES512"})
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


class OidcRefused(Exception):
    """A token that does not sign anyone in; ``reason`` is a short code for the custody log."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class OidcIdentity:
    """Who a valid token names."""

    issuer: str
    subject: str
    username: str | None  # the username claim: used only for a first-use bind an admin allowed
    token_id: str  # "oidc:<jti or sub>", for the custody log


def looks_like_jwt(token: str) -> bool:
    """Whether ``token`` has the three-part shape of a JWS (cheap; verifies nothing)."""
    return bool(_JWT_SHAPE.fullmatch(token))


class OidcVerifier:
    """Checks tokens from one identity provider. Thread-safe; caches the provider's keys."""

    def __init__(
        self,
        *,
        issuer: str,
        audience: str,
        jwks_url: str | None = None,
        username_claim: str = "preferred_username",
        algorithms: tuple[str, ...] = DEFAULT_ALGORITHMS,
        leeway_s: float = 60.0,
        timeout_s: float = 5.0,
        refresh_cooldown_s: float = 30.0,
    ) -> None:
        unsafe = set(algorithms) - _SAFE
        if unsafe or not algorithms:
            raise ConfigError(
                f"OIDC algorithms {sorted(unsafe) or '[]'} are not allowed; use asymmetric ones "
                f"such as {', '.join(DEFAULT_ALGORITHMS[:3])}"
            )
        self.issuer = issuer
        self.audience = audience
        self.username_claim = username_claim
        self.algorithms = list(algorithms)
        self.leeway_s = leeway_s
        self._jwks_url = jwks_url
        self._timeout_s = timeout_s
        self._cooldown_s = refresh_cooldown_s
        self._client: jwt.PyJWKClient | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        """The verifier the settings describe, or None when OIDC sign-in is off."""
        if not settings.oidc_issuer:
            return None
        if not settings.oidc_audience:
            raise ConfigError("oidc_issuer is set but oidc_audience is not: set both")
        return cls(
            issuer=settings.oidc_issuer,
            audience=settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            username_claim=settings.oidc_username_claim,
            algorithms=tuple(settings.oidc_algorithms),
            leeway_s=settings.oidc_leeway_s,
        )

    def verify(self, token: str) -> OidcIdentity:
        """The identity in a valid token; raises OidcRefused (with a reason code) otherwise."""
        try:
            key = self._keys().get_signing_key_from_jwt(token)
        except jwt.PyJWKClientConnectionError as exc:
            raise OidcRefused(f"cannot fetch the identity provider's keys: {exc}", "oidc-keys") from None
        except (jwt.PyJWKClientError, jwt.DecodeError) as exc:
            raise OidcRefused(f"OIDC token refused: {exc}", "oidc-invalid") from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=self.algorithms,
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway_s,
                options={"require": ["exp", "iss", "aud", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise OidcRefused("OIDC token has expired", "oidc-expired") from None
        except jwt.InvalidTokenError as exc:
            raise OidcRefused(f"OIDC token refused: {exc}", "oidc-invalid") from None
        username = claims.get(self.username_claim)
        if not isinstance(username, str) or not username:
            username = None  # needed only for a first-use bind
        subject = claims["sub"]
        if not isinstance(subject, str) or not subject or len(subject) > 255:
            raise OidcRefused("OIDC token's 'sub' is not a 1-255 character string", "oidc-invalid")
        return OidcIdentity(
            issuer=str(claims["iss"]),
            username=username,
            subject=subject,
            token_id=f"oidc:{str(claims.get('jti') or subject)[:100]}",
        )


    def _keys(self) -> jwt.PyJWKClient:
        """The provider's key set client, made on first use (after discovery, if needed)."""
        with self._lock:
            if self._client is None:
                url = self._jwks_url or self._discover()
                # Keys are cached for an hour; a token naming an unknown key id triggers one
                # refetch, at most every cooldown (junk key ids must not hammer the provider).
                self._client = jwt.PyJWKClient(url, cache_keys=True, lifespan=3600,
                                               timeout=self._timeout_s,
                                               cooldown_duration=self._cooldown_s)
            return self._client

    def _discover(self) -> str:
        """``jwks_uri`` from the issuer's OpenID discovery document (OpenID Connect Discovery
        1.0, section 4), which must name the same issuer."""
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        try:
            with urllib.request.urlopen(url, timeout=self._timeout_s) as response:  # noqa: S310
                document = json.loads(response.read(1 << 20))
        except (OSError, ValueError) as exc:
            raise OidcRefused(f"cannot read the identity provider's discovery document {url}:"
                              f" {exc}", "oidc-keys") from None
        if not isinstance(document, dict) or document.get("issuer") != self.issuer:
            raise OidcRefused(f"{url} describes another issuer", "oidc-keys")
        jwks_uri = document.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise OidcRefused(f"{url} names no jwks_uri", "oidc-keys")
        return jwks_uri


__all__ = ["DEFAULT_ALGORITHMS", "OidcIdentity", "OidcRefused", "OidcVerifier", "looks_like_jwt"]
