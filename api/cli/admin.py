"""``evidence-vault admin``: users (role, organisation, sites) and their API tokens.

Each change is a ``user_changed`` custody event by the local operator. A token is printed once
and never stored: only its SHA-256 is kept.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
from typing import Annotated

import typer

from vault.access import identity
from vault.actors import Actor, Role
from vault.errors import InvalidInput
from vault.vault import Vault

from ._common import JsonOpt, load_settings, print_json, reports_errors

admin_app = typer.Typer(help="Users and API tokens.", no_args_is_help=True)
user_app = typer.Typer(help="People and agents who use the API.", no_args_is_help=True)
token_app = typer.Typer(help="Bearer tokens for the API.", no_args_is_help=True)
admin_app.add_typer(user_app, name="user")
admin_app.add_typer(token_app, name="token")

_DURATION = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> dt.timedelta:
    """``90m``, ``12h``, ``30d`` or ``2w`` as a timedelta. Raises InvalidInput."""
    match = _DURATION.fullmatch(text.strip().lower())
    if not match:
        raise InvalidInput(f"--expires-in {text!r}: use a number and m, h, d or w (e.g. 30d)")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def _vault() -> Vault:
    return Vault.open(load_settings())


@user_app.command("add")
@reports_errors
def user_add(
    name: Annotated[str, typer.Argument(help="Login name (letters, digits, . _ @ -).")],
    role: Annotated[Role, typer.Option(help="What they may do (the table in vault/casework/policy.py).")],
    org: Annotated[str, typer.Option("--org", help="Their organisation.")],
    site: Annotated[
        list[str] | None,
        typer.Option("--site", help="A site they may see (need-to-know; repeat for more)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Add a user with a role, organisation and assigned sites."""
    with _vault() as vault:
        user = identity.create_user(
            vault, name=name, role=role, organisation=org, sites=site or [],
            actor=Actor.local_operator(),
        )
    if json_out:
        print_json({"id": user.id, "name": user.name, "role": user.role, "organisation": org,
                    "sites": site or []})
    else:
        typer.echo(f"added {name} ({role.value}, {org})")


@user_app.command("list")
@reports_errors
def user_list(json_out: JsonOpt = False) -> None:
    """List users with their roles, organisations and sites."""
    with _vault() as vault:
        rows = identity.list_users(vault)
    if json_out:
        print_json([
            {"id": u.id, "name": u.name, "role": u.role, "organisation": u.organisation,
             "sites": sites, "active": u.active}
            for u, sites in rows
        ])
        return
    if not rows:
        typer.echo("no users")
    for u, sites in rows:
        state = "" if u.active else "  (disabled)"
        typer.echo(f"{u.name:<24} {u.role.value:<15} {u.organisation:<24} {','.join(sites) or '-'}{state}")


@user_app.command("sites")
@reports_errors
def user_sites(
    name: Annotated[str, typer.Argument(help="User name.")],
    site: Annotated[list[str] | None, typer.Option("--site", help="A site (repeat); none clears.")] = None,
) -> None:
    """Replace the sites a user is assigned to."""
    with _vault() as vault:
        sites = identity.set_sites(vault, name, site or [], actor=Actor.local_operator())
    typer.echo(f"{name}: {', '.join(sites) or 'no sites'}")


@user_app.command("disable")
@reports_errors
def user_disable(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Disable a user: their tokens stop working at once."""
    with _vault() as vault:
        identity.set_active(vault, name, False, actor=Actor.local_operator())
    typer.echo(f"disabled {name}")


IssuerOpt = Annotated[
    str | None,
    typer.Option(help="The provider's issuer ('iss'); default the oidc_issuer setting."),
]


def _issuer(vault: Vault, issuer: str | None) -> str:
    chosen = issuer or vault.settings.oidc_issuer
    if not chosen:
        raise InvalidInput("--issuer is required (no oidc_issuer setting to default to)")
    return chosen


@user_app.command("link-oidc")
@reports_errors
def user_link_oidc(
    name: Annotated[str, typer.Argument(help="User name.")],
    subject: Annotated[str, typer.Option(help="The account's 'sub' claim at the provider.")],
    issuer: IssuerOpt = None,
) -> None:
    """Link a user to their identity-provider account (issuer + subject): only that account
    signs them in through OIDC, whatever its username claim says."""
    with _vault() as vault:
        link = identity.link_oidc(vault, name, issuer=_issuer(vault, issuer), subject=subject,
                                  actor=Actor.local_operator())
    typer.echo(f"{name}: linked to subject {link.subject} of {link.issuer}")


@user_app.command("allow-oidc")
@reports_errors
def user_allow_oidc(
    name: Annotated[str, typer.Argument(help="User name.")],
    issuer: IssuerOpt = None,
    within: Annotated[str, typer.Option(help="How long the allowance lasts (at most 31d).")] = "7d",
) -> None:
    """Allow one first-use bind: the user's next provider sign-in whose username claim is
    their name links that account's subject to them. Use link-oidc when you know the subject."""
    with _vault() as vault:
        link = identity.allow_oidc_bind(vault, name, issuer=_issuer(vault, issuer),
                                        valid_for=parse_duration(within),
                                        actor=Actor.local_operator())
    assert link.bind_until is not None
    typer.echo(f"{name}: the next sign-in through {link.issuer} before "
               f"{link.bind_until:%Y-%m-%d %H:%M}Z binds that account")


@user_app.command("unlink-oidc")
@reports_errors
def user_unlink_oidc(
    name: Annotated[str, typer.Argument(help="User name.")],
    issuer: IssuerOpt = None,
) -> None:
    """Remove a user's identity-provider link (or unused allowance)."""
    with _vault() as vault:
        chosen = _issuer(vault, issuer)
        identity.unlink_oidc(vault, name, issuer=chosen, actor=Actor.local_operator())
    typer.echo(f"{name}: no longer linked to {chosen}")


@user_app.command("oidc-links")
@reports_errors
def user_oidc_links(
    name: Annotated[str | None, typer.Argument(help="Only this user's links.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List identity-provider links and pending first-use binds."""
    with _vault() as vault:
        rows = identity.list_oidc_links(vault, name)
    data = [
        {"user": n, "issuer": link.issuer, "subject": link.subject, "bind_until": link.bind_until,
         "bound_at": link.bound_at, "created_by": link.created_by}
        for link, n in rows
    ]
    if json_out:
        print_json(data)
        return
    if not data:
        typer.echo("no links")
    for d in data:
        state = (d["subject"] if d["subject"] is not None
                 else f"(first-use bind allowed until {d['bind_until']:%Y-%m-%d %H:%M}Z)")
        typer.echo(f"{d['user']:<24} {d['issuer']}  {state}")


@token_app.command("issue")
@reports_errors
def token_issue(
    user: Annotated[str, typer.Argument(help="User name.")],
    expires_in: Annotated[str, typer.Option(help="Lifetime: 90m, 12h, 30d, 2w (at most 366d).")] = "30d",
    label: Annotated[str | None, typer.Option(help="A note, e.g. the device it is for.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Issue a bearer token; it is printed once and cannot be shown again."""
    with _vault() as vault:
        issued = identity.issue_token(
            vault, user, actor=Actor.local_operator(), expires_in=parse_duration(expires_in),
            label=label,
        )
    if json_out:
        print_json({"token": issued.token, "token_id": issued.token_id, "user": issued.user,
                    "expires_at": issued.expires_at})
        return
    typer.echo(issued.token)
    typer.echo(
        f"token {issued.token_id} for {user}, expires {issued.expires_at:%Y-%m-%d %H:%M}Z; "
        "shown once: store it now",
        err=True,
    )


@token_app.command("list")
@reports_errors
def token_list(
    user: Annotated[str | None, typer.Argument(help="Only this user's tokens.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """List tokens (ids, never secrets) with expiry and revocation."""
    with _vault() as vault:
        rows = identity.list_tokens(vault, user)
    data = [
        {"token_id": t.id, "user": name, "label": t.label, "created_at": t.created_at,
         "expires_at": t.expires_at, "revoked_at": t.revoked_at}
        for t, name in rows
    ]
    if json_out:
        print_json(data)
        return
    for d in data:
        state = f"revoked {d['revoked_at']:%Y-%m-%d}" if d["revoked_at"] else f"expires {d['expires_at']:%Y-%m-%d}"
        typer.echo(f"{d['token_id']}  {d['user']:<24} {state}  {d['label'] or ''}".rstrip())


@token_app.command("revoke")
@reports_errors
def token_revoke(
    token_id: Annotated[str, typer.Argument(metavar="TOKEN_ID", help="Token id (or the token).")],
) -> None:
    """Revoke a token at once."""
    with _vault() as vault:
        row = identity.revoke_token(vault, token_id, actor=Actor.local_operator())
    typer.echo(f"revoked token {row.id}")


@user_app.command("set-password")
@reports_errors
def user_set_password(
    name: Annotated[str, typer.Argument(help="User name.")],
    password_stdin: Annotated[bool, typer.Option(
        "--password-stdin", help="Read the password from the first line of stdin (scripts).")] = False,
) -> None:
    """Set a user's web sign-in password (12+ characters); clears a lock-out."""
    from vault.access import credentials

    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("New password", hide_input=True, confirmation_prompt=True)
    with _vault() as vault:
        credentials.set_password(vault, name, password, actor=Actor.local_operator())
    typer.echo(f"password set for {name}; they set up their authenticator at next sign-in"
               " if they have none")


@user_app.command("reset-2fa")
@reports_errors
def user_reset_2fa(name: Annotated[str, typer.Argument(help="User name.")]) -> None:
    """Forget a user's authenticator (lost phone): they set up a new one at next sign-in."""
    from vault.access import credentials

    with _vault() as vault:
        credentials.reset_second_factor(vault, name, actor=Actor.local_operator())
    typer.echo(f"second factor reset for {name}")


__all__ = ["admin_app", "parse_duration"]
