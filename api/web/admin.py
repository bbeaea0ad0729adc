"""The administrator's pages: users, roles, sites and organisations, API tokens, second factors.

    GET  /admin                                   -> /admin/users
    GET  /admin/users                             every user: role, organisation, sites, sign-in
    GET  /admin/users/new, POST /admin/users      add a user (a temporary password, shown once)
    GET  /admin/users/{name}                      one user: the forms below
    POST /admin/users/{name}/role | sites | disable | enable | password | reset-2fa | tokens
    GET  /admin/tokens                            every API token (never a secret); revoke
    POST /admin/tokens/{id}/revoke
    GET  /admin/sites, POST /admin/sites          sites, their organisations, unowned sources

Rules, the same as the CLI's (``evidence-vault admin``), through the same functions:

1. Only a role holding ``users.manage`` (users, roles, tokens, second factors) or
   ``sites.manage`` (sites) in :mod:`vault.casework.policy` gets anywhere: administrators. Anyone else
   is refused with an ``access_denied`` event before anything is read.
2. Every change is a form with the session's CSRF token (checked first: a refusal is logged
   and changes nothing), and is **confirmed**: the first POST shows what will happen and asks
   again; only the second (``confirm=yes``) acts.
3. Each change is the vault function the CLI calls, so each is the same custody event:
   ``user_changed`` (``user_created``, ``role_set``, ``sites_set``, ``disabled``,
   ``enabled``, ``password_set``, ``second_factor_reset``, ``token_issued``,
   ``token_revoked``) or ``site.registered``, with the administrator as the actor.
4. Secrets are shown once and never stored: a temporary password (only its Argon2id hash is
   kept) and an API token (only its SHA-256). A second-factor reset and a new password end
   the user's web sessions; they enrol a new authenticator at their next sign-in.
5. An administrator cannot disable themselves or take away their own administrator role:
   the vault would be left with nobody able to undo it from the browser.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response
from sqlalchemy import func, select

from vault.access import credentials, identity
from vault.casework import sites
from vault.actors import Role
from vault.storage.catalog import Site
from vault.access.credentials import Credential
from vault.errors import InvalidInput, NotFound
from vault.access.identity import ApiToken, OidcLink, User
from vault.casework.policy import Permission
from vault.vault import Vault

from . import _security as sec
from .routes import (
    WebContext,
    WebFormDep,
    WebUser,
    WebContextDep,
    _vault,
    page,
    templates,
)

router = APIRouter(route_class=sec.make_route_class(templates), include_in_schema=False)

#: vault.access.identity's rule for user names (checked again there when a user is created).
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,127}$"
UserName = Annotated[str, Path(pattern=NAME_PATTERN)]
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$")]
#: Roles a person can be given (recipients reach shares through their link only).
ROLES = tuple(r for r in Role if r is not Role.SHARE_RECIPIENT)
ROLE_NAMES = {
    Role.ADMINISTRATOR: "Administrator",
    Role.ASB_OFFICER: "ASB officer",
    Role.IG_OFFICER: "Information-governance officer",
    Role.POLICE_LIAISON: "Police liaison",
    Role.AUDITOR: "Auditor",
    Role.INGEST_AGENT: "Ingest agent",
}
DEFAULT_TOKEN_DAYS = 30
MAX_TOKEN_DAYS = 366
#: A temporary password: 20 characters of base64url (120 bits), well past the 12 required.
TEMPORARY_PASSWORD_BYTES = 15
CONFIRMED = "yes"


def temporary_password() -> str:
    """A random password to hand over once (check 4)."""
    return secrets.token_urlsafe(TEMPORARY_PASSWORD_BYTES)


def _admin(ctx: WebContext, permission: Permission = Permission.USERS_MANAGE) -> Vault:
    """Check 2, the role (``ctx.require``: refusals logged), for a page and for a form; a
    form's check 1, its CSRF token, is :data:`WebFormDep`'s, done before this runs."""
    ctx.require(permission)
    return ctx.vault


def _confirm(request: Request, user: WebUser, *, title: str, action: str, button: str,
             rows: list[tuple[str, str]], fields: dict[str, str], warning: str | None = None,
             back: str) -> Response:
    """Check 2: the page that asks again before a change; its form re-sends ``fields``."""
    return page(request, "admin_confirm.html", {
        "csrf": user.csrf, "title": title, "action": action, "button": button, "rows": rows,
        "fields": fields, "warning": warning, "back": back})


# --- users -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UserRow:
    """A user as the list shows them: who, where, and how they sign in."""

    user: User
    sites: list[str]
    password: bool
    second_factor: str  # "set up", "not set up", "waiting for a code"
    locked: bool
    oidc: int
    tokens: int


def _user_rows(vault: Vault, name: str | None = None) -> list[UserRow]:
    now = vault.clock()
    listed = identity.list_users(vault)
    with vault.sessions() as session:
        creds = {c.user_id: c for c in session.scalars(select(Credential))}
        links = {uid: n for uid, n in session.execute(
            select(OidcLink.user_id, func.count()).where(OidcLink.subject.is_not(None))
            .group_by(OidcLink.user_id))}
        live = {uid: n for uid, n in session.execute(
            select(ApiToken.user_id, func.count())
            .where(ApiToken.revoked_at.is_(None), ApiToken.expires_at > now)
            .group_by(ApiToken.user_id))}
    rows = []
    for user, user_sites in listed:
        if name is not None and user.name != name:
            continue
        cred = creds.get(user.id)
        if cred is not None and cred.totp_confirmed_at is not None and cred.has_second_factor:
            factor = "set up"
        elif cred is not None and cred.has_second_factor:
            factor = "waiting for a code"
        else:
            factor = "not set up"
        locked_until = cred.locked_until if cred is not None else None
        rows.append(UserRow(
            user=user, sites=user_sites, password=bool(cred and cred.password_hash),
            second_factor=factor, locked=bool(locked_until and locked_until > now),
            oidc=int(links.get(user.id, 0)), tokens=int(live.get(user.id, 0))))
    return rows


def _one(vault: Vault, name: str) -> UserRow:
    rows = _user_rows(vault, name)
    if not rows:
        raise NotFound(f"there is no user called {name!r}")
    return rows[0]


def _organisations(vault: Vault) -> list[dict[str, Any]]:
    """Every organisation the vault knows (its users', its sites', the vault's own), with how
    many users and sites each has."""
    with vault.sessions() as session:
        users = {org: n for org, n in session.execute(
            select(User.organisation, func.count()).group_by(User.organisation))}
        owned = {org: n for org, n in session.execute(
            select(Site.organisation, func.count()).group_by(Site.organisation))}
    names = set(users) | set(owned)
    if vault.settings.organisation:
        names.add(vault.settings.organisation)
    return [{"name": n, "users": int(users.get(n, 0)), "sites": int(owned.get(n, 0)),
             "own": n == vault.settings.organisation} for n in sorted(names)]


@router.get("/admin")
def admin_home(ctx: WebContextDep) -> Response:
    _admin(ctx)
    return sec.redirect("/admin/users")


@router.get("/admin/users")
def users(ctx: WebContextDep) -> Response:
    vault = _admin(ctx)
    return page(ctx.request, "admin_users.html", {
        "rows": _user_rows(vault), "roles": ROLE_NAMES,
        "done": ctx.request.query_params.get("done")})


def _new_user_page(request: Request, user: WebUser, values: dict[str, str],
                   errors: dict[str, str], status: int = 200) -> Response:
    vault = _vault(request)
    return page(request, "admin_user_new.html", {
        "csrf": user.csrf, "values": values, "errors": errors, "roles": ROLE_NAMES,
        "organisations": [o["name"] for o in _organisations(vault)],
        "sites": sites.list_sites(vault)}, status=status)


@router.get("/admin/users/new")
def new_user(ctx: WebContextDep) -> Response:
    _admin(ctx)
    return _new_user_page(ctx.request, ctx.user, {"name": "", "role": Role.ASB_OFFICER.value,
                                          "organisation": ctx.principal.organisation,
                                          "sites": ""}, {})


def _site_list(text: str) -> list[str]:
    return [s.strip() for s in text.replace("\r", "\n").replace(",", "\n").split("\n")
            if s.strip()]


@router.post("/admin/users")
def add_user(
    ctx: WebFormDep,
    name: Annotated[str, Form(max_length=129)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
    organisation: Annotated[str, Form(max_length=257)] = "",
    site_names: Annotated[str, Form(alias="sites", max_length=8000)] = "",
    confirm: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Add a user (``identity.create_user``) with a temporary password shown once."""
    vault = _admin(ctx)
    values = {"name": name.strip(), "role": role, "organisation": organisation.strip(),
              "sites": site_names.strip()}
    errors: dict[str, str] = {}
    if not values["name"]:
        errors["name"] = "Enter their user name, for example j.smith"
    elif not re.fullmatch(NAME_PATTERN, values["name"]):
        errors["name"] = ("A user name is 1 to 128 letters, digits, full stops, underscores, "
                          "@ or hyphens, starting with a letter or digit")
    else:
        try:
            identity.get_user(vault, values["name"])
            errors["name"] = f"There is already a user called {values['name']}"
        except NotFound:
            pass
    if role not in {r.value for r in ROLES}:
        errors["role"] = "Choose what they do"
    if not values["organisation"]:
        errors["organisation"] = "Enter their organisation"
    elif len(values["organisation"]) > 256:
        errors["organisation"] = "Use at most 256 characters"
    site_list = _site_list(values["sites"])
    if any(len(s) > 256 for s in site_list):
        errors["sites"] = "A site name is at most 256 characters"
    if errors:
        return _new_user_page(ctx.request, ctx.user, values, errors, status=400)
    if confirm != CONFIRMED:
        return _confirm(
            ctx.request, ctx.user, title=f"Add {values['name']}?", action="/admin/users",
            button="Add user", back="/admin/users/new",
            rows=[("User name", values["name"]), ("Role", ROLE_NAMES[Role(role)]),
                  ("Organisation", values["organisation"]),
                  ("Sites", ", ".join(site_list) or "None (only cases they are added to)")],
            fields={"name": values["name"], "role": role, "organisation": values["organisation"],
                    "sites": "\n".join(site_list)},
            warning=None if role != Role.ADMINISTRATOR.value else
            "An administrator sees every organisation's footage and manages every user.")
    created = identity.create_user(vault, name=values["name"], role=role,
                                   organisation=values["organisation"], sites=site_list,
                                   actor=ctx.principal.actor)
    password = temporary_password()
    credentials.set_password(vault, created.name, password, actor=ctx.principal.actor)
    return page(ctx.request, "admin_secret.html", {
        "title": f"{created.name} added", "kind": "password", "secret": password,
        "name": created.name,
        "next": f"/admin/users/{created.name}"})


@router.get("/admin/users/{name}")
def user_page(ctx: WebContextDep, name: UserName) -> Response:
    vault = _admin(ctx)
    row = _one(vault, name)
    tokens = [t for t, _n in identity.list_tokens(vault, name)]
    return page(ctx.request, "admin_user.html", {
        "csrf": ctx.user.csrf, "row": row, "roles": ROLE_NAMES, "tokens": tokens,
        "now": vault.clock(), "is_self": name == ctx.principal.name,
        "done": ctx.request.query_params.get("done"), "default_days": DEFAULT_TOKEN_DAYS,
        "max_days": MAX_TOKEN_DAYS})


def _not_self(user: WebUser, name: str, what: str) -> None:
    """Check 5."""
    if name == user.principal.name:
        raise InvalidInput(f"You cannot {what} yourself: ask another administrator")


@router.post("/admin/users/{name}/role")
def set_role(ctx: WebFormDep, name: UserName,
             role: Annotated[str, Form(max_length=32)] = "",
             confirm: Annotated[str, Form(max_length=8)] = "") -> Response:
    vault = _admin(ctx)
    row = _one(vault, name)
    if role not in {r.value for r in ROLES}:
        raise InvalidInput("Choose one of the roles listed, then try again")
    if role != Role.ADMINISTRATOR.value:
        _not_self(ctx.user, name, "take the administrator role from")
    if confirm != CONFIRMED:
        return _confirm(
            ctx.request, ctx.user, title=f"Change {name}'s role?", action=f"/admin/users/{name}/role",
            button="Change role", back=f"/admin/users/{name}",
            rows=[("User", name), ("Role now", ROLE_NAMES[row.user.role]),
                  ("New role", ROLE_NAMES[Role(role)])],
            fields={"role": role},
            warning="It applies at their next request, to their web sessions and API tokens.")
    identity.set_role(vault, name, role, actor=ctx.principal.actor)
    return sec.redirect(f"/admin/users/{name}?done=role")


@router.post("/admin/users/{name}/sites")
def set_sites(ctx: WebFormDep, name: UserName,
              site_names: Annotated[str, Form(alias="sites", max_length=8000)] = "",
              confirm: Annotated[str, Form(max_length=8)] = "") -> Response:
    vault = _admin(ctx)
    row = _one(vault, name)
    chosen = _site_list(site_names)
    if confirm != CONFIRMED:
        return _confirm(
            ctx.request, ctx.user, title=f"Change {name}'s sites?", action=f"/admin/users/{name}/sites",
            button="Change sites", back=f"/admin/users/{name}",
            rows=[("User", name), ("Sites now", ", ".join(row.sites) or "None"),
                  ("New sites", ", ".join(chosen) or "None")],
            fields={"sites": "\n".join(chosen)},
            warning="An ASB officer sees the footage of their sites (within their organisation).")
    identity.set_sites(vault, name, chosen, actor=ctx.principal.actor)
    return sec.redirect(f"/admin/users/{name}?done=sites")


def _set_active(ctx: WebContext, name: str, confirm: str, active: bool) -> Response:
    request, user = ctx.request, ctx.user
    vault = _admin(ctx)
    _one(vault, name)
    if not active:
        _not_self(user, name, "disable")
    verb = "enable" if active else "disable"
    if confirm != CONFIRMED:
        return _confirm(
            request, user, title=f"{verb.capitalize()} {name}?",
            action=f"/admin/users/{name}/{verb}", button=f"{verb.capitalize()} {name}",
            back=f"/admin/users/{name}", rows=[("User", name)], fields={},
            warning=("Their API tokens and web sessions stop working at once; nothing they "
                     "recorded is lost.") if not active else None)
    # A disabled user's web sessions end at their next request (vault/access/web_sessions.py).
    identity.set_active(vault, name, active, actor=user.principal.actor)
    return sec.redirect(f"/admin/users/{name}?done={verb}d")


@router.post("/admin/users/{name}/disable")
def disable_user(ctx: WebFormDep, name: UserName,
                 confirm: Annotated[str, Form(max_length=8)] = "") -> Response:
    return _set_active(ctx, name, confirm, False)


@router.post("/admin/users/{name}/enable")
def enable_user(ctx: WebFormDep, name: UserName,
                confirm: Annotated[str, Form(max_length=8)] = "") -> Response:
    return _set_active(ctx, name, confirm, True)


@router.post("/admin/users/{name}/password")
def new_password(ctx: WebFormDep, name: UserName,
                 confirm: Annotated[str, Form(max_length=8)] = "") -> Response:
    """A new temporary password (``credentials.set_password``): clears a lock-out."""
    vault = _admin(ctx)
    _one(vault, name)
    if confirm != CONFIRMED:
        return _confirm(
            ctx.request, ctx.user, title=f"Give {name} a new password?",
            action=f"/admin/users/{name}/password", button="Make a new password",
            back=f"/admin/users/{name}", rows=[("User", name)], fields={},
            warning="Their old password stops working and their web sessions end. The new "
                    "one is shown once, for you to pass on.")
    password = temporary_password()
    credentials.set_password(vault, name, password, actor=ctx.principal.actor)
    return page(ctx.request, "admin_secret.html", {
        "title": f"New password for {name}", "kind": "password", "secret": password,
        "name": name, "next": f"/admin/users/{name}"})


@router.post("/admin/users/{name}/reset-2fa")
def reset_second_factor(ctx: WebFormDep, name: UserName,
                        confirm: Annotated[str, Form(max_length=8)] = "") -> Response:
    """Forget their authenticator (``credentials.reset_second_factor``): they enrol a new one
    at their next sign-in."""
    vault = _admin(ctx)
    _one(vault, name)
    if confirm != CONFIRMED:
        return _confirm(
            ctx.request, ctx.user, title=f"Reset {name}'s second factor?",
            action=f"/admin/users/{name}/reset-2fa", button="Reset second factor",
            back=f"/admin/users/{name}", rows=[("User", name)], fields={},
            warning="Do this only when you are sure who is asking (a lost or replaced phone). "
                    "Their web sessions end; at their next sign-in they set up a new "
                    "authenticator with their password.")
    credentials.reset_second_factor(vault, name, actor=ctx.principal.actor)
    return sec.redirect(f"/admin/users/{name}?done=reset-2fa")


@router.post("/admin/users/{name}/tokens")
def issue_token(ctx: WebFormDep, name: UserName,
                label: Annotated[str, Form(max_length=257)] = "",
                days: Annotated[str, Form(max_length=8)] = "",
                confirm: Annotated[str, Form(max_length=8)] = "") -> Response:
    """Issue an API token (``identity.issue_token``), shown once."""
    vault = _admin(ctx)
    row = _one(vault, name)
    text = days.strip() or str(DEFAULT_TOKEN_DAYS)
    if not text.isdigit() or not 1 <= int(text) <= MAX_TOKEN_DAYS:
        raise InvalidInput(f"A token lasts 1 to {MAX_TOKEN_DAYS} days: go back and enter a "
                           "whole number of days")
    if not row.user.active:
        raise InvalidInput(f"{name} is disabled: enable them before issuing a token")
    label = label.strip()
    if len(label) > 256:
        raise InvalidInput("A token label is at most 256 characters: go back and shorten it")
    if confirm != CONFIRMED:
        return _confirm(
            ctx.request, ctx.user, title=f"Issue an API token for {name}?",
            action=f"/admin/users/{name}/tokens", button="Issue token",
            back=f"/admin/users/{name}",
            rows=[("User", name), ("Role", ROLE_NAMES[row.user.role]),
                  ("Label", label or "None"), ("Lasts", f"{int(text)} days")],
            fields={"label": label, "days": text},
            warning="Whoever holds the token can use the API as this user until it expires "
                    "or is revoked. It is shown once.")
    issued = identity.issue_token(vault, name, actor=ctx.principal.actor,
                                  expires_in=dt.timedelta(days=int(text)), label=label or None)
    return page(ctx.request, "admin_secret.html", {
        "title": f"API token for {name}", "kind": "token", "secret": issued.token,
        "name": name, "token_id": issued.token_id, "expires": issued.expires_at,
        "next": f"/admin/users/{name}"})


@router.get("/admin/tokens")
def tokens(ctx: WebContextDep) -> Response:
    vault = _admin(ctx)
    return page(ctx.request, "admin_tokens.html", {
        "csrf": ctx.user.csrf, "tokens": identity.list_tokens(vault), "now": vault.clock(),
        "done": ctx.request.query_params.get("done")})


@router.post("/admin/tokens/{token_id}/revoke")
def revoke_token(ctx: WebFormDep, token_id: TokenId,
                 confirm: Annotated[str, Form(max_length=8)] = "") -> Response:
    """Revoke an API token (``identity.revoke_token``): it stops working at once."""
    vault = _admin(ctx)
    found = next(((t, n) for t, n in identity.list_tokens(vault) if t.id == token_id), None)
    if found is None:
        raise NotFound(f"there is no API token {token_id}")
    token, owner = found
    if token.revoked_at is not None:
        raise InvalidInput(f"Token {token_id} was already revoked")
    if confirm != CONFIRMED:
        return _confirm(
            ctx.request, ctx.user, title="Revoke this API token?",
            action=f"/admin/tokens/{token_id}/revoke", button="Revoke token",
            back="/admin/tokens",
            rows=[("Token", token_id), ("User", owner), ("Label", token.label or "None")],
            fields={}, warning="Anything using it is refused from the next request.")
    identity.revoke_token(vault, token_id, actor=ctx.principal.actor)
    return sec.redirect("/admin/tokens?done=revoked")


# --- sites and organisations -------------------------------------------------------------------


def _sites_page(request: Request, user: WebUser, values: dict[str, str],
                errors: dict[str, str], status: int = 200) -> Response:
    vault = _vault(request)
    unowned = sites.unowned_sources(vault)
    return page(request, "admin_sites.html", {
        "csrf": user.csrf, "sites": sites.list_sites(vault), "unowned": unowned,
        "organisations": _organisations(vault), "values": values, "errors": errors,
        "done": request.query_params.get("done")}, status=status)


@router.get("/admin/sites")
def sites_page(ctx: WebContextDep) -> Response:
    _admin(ctx, Permission.SITES_MANAGE)
    return _sites_page(ctx.request, ctx.user, {"site": "", "organisation": ""}, {})


@router.post("/admin/sites")
def register_site(ctx: WebFormDep,
                  site: Annotated[str, Form(max_length=257)] = "",
                  organisation: Annotated[str, Form(max_length=257)] = "",
                  confirm: Annotated[str, Form(max_length=8)] = "") -> Response:
    """Register a site to an organisation (``sites.register_site``): unowned sources there
    become its footage."""
    vault = _admin(ctx, Permission.SITES_MANAGE)
    values = {"site": site.strip(), "organisation": organisation.strip()}
    errors: dict[str, str] = {}
    if not values["site"]:
        errors["site"] = "Enter the site's name, as its cameras name it"
    if not values["organisation"]:
        errors["organisation"] = "Enter the organisation that runs its cameras"
    for key in ("site", "organisation"):
        if len(values[key]) > 256:
            errors[key] = "Use at most 256 characters"
    if errors:
        return _sites_page(ctx.request, ctx.user, values, errors, status=400)
    if confirm != CONFIRMED:
        here = [s for s in sites.unowned_sources(vault) if s.site == values["site"]]
        return _confirm(
            ctx.request, ctx.user, title=f"Register {values['site']}?", action="/admin/sites",
            button="Register site", back="/admin/sites",
            rows=[("Site", values["site"]), ("Organisation", values["organisation"]),
                  ("Cameras that become its footage", ", ".join(s.id for s in here) or "None yet")],
            fields=values,
            warning="Footage does not change organisation afterwards by registering again.")
    try:
        sites.register_site(vault, values["site"], organisation=values["organisation"],
                            actor=ctx.principal.actor)
    except InvalidInput as error:
        return _sites_page(ctx.request, ctx.user, values, {"site": str(error).capitalize()}, status=400)
    return sec.redirect("/admin/sites?done=registered")


__all__ = ["ROLES", "ROLE_NAMES", "router", "temporary_password"]
