"""Dependencies shared by the routes, as ``Annotated`` aliases.

- :data:`VaultDep`: the app's :class:`~vault.vault.Vault`.
- :data:`PrincipalDep`: who is calling, from ``Authorization: Bearer <token>``; a missing or bad
  token is refused (401, logged) before the route runs.
- :data:`PurposeDep`: why, from ``X-Purpose`` (required on footage routes), ``X-Reference``
  (case, crime or SAR reference) and ``X-Lawful-Basis``. Routes call ``.require()`` after the
  access check, so a refused caller is logged as refused whether or not they said why; the
  OpenAPI description marks ``X-Purpose`` required on every route that takes it
  (:mod:`api._openapi`). :data:`OptionalPurposeDep` is for the few routes where it is not.
- :data:`RouteDep`: the route as ``METHOD /template`` (never the concrete path, which for a
  share holds its token), for custody event details.
- :data:`ContextDep`: the three together (:class:`RequestContext`), the one opening of every
  authenticated API route; its ``require*`` methods are the policy checks of
  :mod:`vault.casework.policy` with the vault, principal and route filled in (the same
  functions, so there is no second authorisation path). The web pages' context
  (:class:`api.web.routes.WebContext`) extends it with the signed-in session.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

from fastapi import Depends, Header, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from vault.actors import Purpose
from vault.access.denials import DenialThrottle
from vault.access.identity import Principal, authenticate
from vault.casework import policy
from vault.casework.jobs import require_job
from vault.casework.policy import Permission
from vault.vault import Vault

from .errors import MissingHeader

#: Where :func:`get_principal` finds the principal the body gate (:mod:`api._body`) authenticated.
PRINCIPAL_STATE = "body_gate_principal"

MAX_PURPOSE = 2000
MAX_FIELD = 256

bearer_scheme = HTTPBearer(
    auto_error=False,
    scheme_name="BearerToken",
    description="An API token issued with `evidence-vault admin token issue USER`.",
)


def get_vault(request: Request) -> Vault:
    """The vault the app serves."""
    vault: Vault = request.app.state.vault
    return vault


VaultDep = Annotated[Vault, Depends(get_vault)]


def route_name(request: Request) -> str:
    """``METHOD /route/{template}`` of the request (no path values: they may be secrets)."""
    route = request.scope.get("route")
    return f"{request.method} {getattr(route, 'path', '?')}"


RouteDep = Annotated[str, Depends(route_name)]


def client_addr(request: Request) -> str | None:
    """The client's address as the server saw it (a proxy's, behind one)."""
    return request.client.host if request.client else None


def get_denials(request: Request) -> DenialThrottle:
    """The app's throttle of anonymous refusals (bearer tokens and share links share it)."""
    throttle: DenialThrottle = request.app.state.denials
    return throttle


DenialsDep = Annotated[DenialThrottle, Depends(get_denials)]


def _bearer_token(request: Request) -> str | None:
    # As HTTPBearer(auto_error=False) reads it: another scheme, or none, is no token.
    scheme, _, credentials = (request.headers.get("authorization") or "").partition(" ")
    return credentials.strip() or None if scheme.lower() == "bearer" else None


def authenticate_request(request: Request, route: str) -> Principal:
    """The caller of ``request`` on ``route`` (``METHOD /template``), from its bearer token.

    Raises Unauthenticated (logged, through the app's denial throttle).
    """
    vault: Vault = request.app.state.vault
    return authenticate(vault, _bearer_token(request), client_addr=client_addr(request),
                        route=route, throttle=request.app.state.denials,
                        oidc=request.app.state.oidc)


def get_principal(
    request: Request,
    route: RouteDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The authenticated caller. Raises Unauthenticated (401, logged).

    A request with a body was authenticated before its body was read (:mod:`api._body`);
    that principal is used as it is, so the token is checked once per request.
    """
    early: Principal | None = getattr(request.state, PRINCIPAL_STATE, None)
    if early is None:
        early = authenticate_request(request, route)
        # A body the route reads later (an upload) then needs no second check.
        setattr(request.state, PRINCIPAL_STATE, early)
    return early


PrincipalDep = Annotated[Principal, Depends(get_principal)]

if TYPE_CHECKING:
    from vault.casework.jobs import Job
    from vault.casework.shares import Share
    from vault.storage.catalog import Case, Hold, Recording, Source


@dataclass(frozen=True)
class RequestContext:
    """Who asks (``principal``), of which vault, on which route (``METHOD /template``).

    Each ``require*`` method is the policy function of the same name
    (:mod:`vault.casework.policy`, :func:`vault.casework.jobs.require_job`) called with these
    three: a refusal is logged with the route and raised as AccessDenied, exactly as a direct
    call would, because it is that call."""

    vault: Vault
    principal: Principal
    route: str

    def require(self, permission: Permission, *, object_ids: Iterable[str] = ()) -> None:
        """:func:`vault.casework.policy.require`: the role holds ``permission``."""
        policy.require(self.vault, self.principal, permission, object_ids=object_ids,
                       route=self.route)

    def require_recording(self, permission: Permission, recording_id: str) -> Recording:
        """:func:`vault.casework.policy.require_recording`."""
        return policy.require_recording(self.vault, self.principal, permission, recording_id,
                                        route=self.route)

    def require_case(self, permission: Permission, case_id: str) -> Case:
        """:func:`vault.casework.policy.require_case`."""
        return policy.require_case(self.vault, self.principal, permission, case_id,
                                   route=self.route)

    def require_hold(self, permission: Permission, hold_id: str) -> Hold:
        """:func:`vault.casework.policy.require_hold`."""
        return policy.require_hold(self.vault, self.principal, permission, hold_id,
                                   route=self.route)

    def require_source(self, permission: Permission, source_id: str) -> Source:
        """:func:`vault.casework.policy.require_source`."""
        return policy.require_source(self.vault, self.principal, permission, source_id,
                                     route=self.route)

    def require_sar(self, permission: Permission, sar_id: str) -> None:
        """:func:`vault.casework.policy.require_sar`."""
        policy.require_sar(self.vault, self.principal, permission, sar_id, route=self.route)

    def require_share(self, permission: Permission, share: Share | None,
                      share_id: str) -> Share:
        """:func:`vault.casework.policy.require_share`."""
        return policy.require_share(self.vault, self.principal, permission, share, share_id,
                                    route=self.route)

    def require_event(self, seq: int) -> None:
        """:func:`vault.casework.policy.require_event`."""
        policy.require_event(self.vault, self.principal, seq, route=self.route)

    def require_job(self, permission: Permission, job_id: str, *,
                    with_plan: bool = True) -> Job:
        """:func:`vault.casework.jobs.require_job`."""
        return require_job(self.vault, self.principal, permission, job_id, route=self.route,
                           with_plan=with_plan)


def request_context(vault: VaultDep, principal: PrincipalDep, route: RouteDep) -> RequestContext:
    """The context of an authenticated API request (401, logged, without a valid token)."""
    return RequestContext(vault=vault, principal=principal, route=route)


ContextDep = Annotated[RequestContext, Depends(request_context)]


@dataclass(frozen=True)
class PurposeHeaders:
    """The purpose headers as sent; :meth:`require` turns them into a Purpose."""

    purpose: str | None
    reference: str | None
    lawful_basis: str | None

    def require(self) -> Purpose:
        """The stated purpose. Raises MissingHeader (400) naming the header at fault."""
        purpose = (self.purpose or "").strip()
        if not purpose:
            raise MissingHeader(
                "X-Purpose", "say why you need this footage; it is recorded in the custody log"
            )
        if len(purpose) > MAX_PURPOSE:
            raise MissingHeader("X-Purpose", f"at most {MAX_PURPOSE} characters")
        for name, value in (("X-Reference", self.reference), ("X-Lawful-Basis", self.lawful_basis)):
            if value is not None and len(value) > MAX_FIELD:
                raise MissingHeader(name, f"at most {MAX_FIELD} characters")
        return Purpose(
            purpose=purpose,
            reference=(self.reference or "").strip() or None,
            lawful_basis=(self.lawful_basis or "").strip() or None,
        )


# The two headers every purpose dependency reads the same way (only X-Purpose differs).
ReferenceHeader = Annotated[
    str | None, Header(description="Case, crime or SAR reference (logged).")
]
LawfulBasisHeader = Annotated[
    str | None,
    Header(description="Lawful basis, e.g. 'DPA 2018 s.35 law enforcement' (logged)."),
]


def get_purpose(
    x_purpose: Annotated[
        str | None,
        Header(description="Why you need this footage (required on this route; logged)."),
    ] = None,
    x_reference: ReferenceHeader = None,
    x_lawful_basis: LawfulBasisHeader = None,
) -> PurposeHeaders:
    """The purpose headers of a route that needs ``X-Purpose``.

    The header is parsed as optional so that the route's access check runs (and logs a
    refusal) before :meth:`PurposeHeaders.require` asks for it; the OpenAPI description
    still shows it as required (:func:`api._openapi.required_headers`)."""
    return PurposeHeaders(x_purpose, x_reference, x_lawful_basis)


def get_optional_purpose(
    x_purpose: Annotated[
        str | None,
        Header(description="Why (optional on this route; logged when given)."),
    ] = None,
    x_reference: ReferenceHeader = None,
    x_lawful_basis: LawfulBasisHeader = None,
) -> PurposeHeaders:
    """The purpose headers of a route on which ``X-Purpose`` is optional."""
    return PurposeHeaders(x_purpose, x_reference, x_lawful_basis)


#: Footage routes: ``X-Purpose`` is required (and documented so in OpenAPI).
PurposeDep = Annotated[PurposeHeaders, Depends(get_purpose)]
#: Routes that log a purpose when one is given, and work without.
OptionalPurposeDep = Annotated[PurposeHeaders, Depends(get_optional_purpose)]
ClientAddrDep = Annotated[str | None, Depends(client_addr)]

__all__ = [
    "ClientAddrDep",
    "ContextDep",
    "DenialsDep",
    "OptionalPurposeDep",
    "PrincipalDep",
    "PurposeDep",
    "PurposeHeaders",
    "RequestContext",
    "RouteDep",
    "VaultDep",
    "bearer_scheme",
    "authenticate_request",
    "client_addr",
    "get_denials",
    "get_optional_purpose",
    "get_principal",
    "get_purpose",
    "get_vault",
    "request_context",
    "route_name",
]
