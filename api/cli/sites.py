"""``evidence-vault admin site``: which organisation owns each site's footage.

In a vault shared by several organisations every site is registered to its owner, so that an
officer of one organisation never sees another's cameras (docs/organisations.md).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

import typer

from vault.casework import sites
from vault.actors import Actor
from vault.vault import Vault

from ._common import JsonOpt, load_settings, print_json, reports_errors

site_app = typer.Typer(help="Sites and the organisation that owns their footage.",
                       no_args_is_help=True)


@site_app.command("add")
@reports_errors
def site_add(
    name: Annotated[str, typer.Argument(help="The site (estate, building), as sources name it.")],
    org: Annotated[str, typer.Option("--org", help="The organisation that runs its cameras.")],
    json_out: JsonOpt = False,
) -> None:
    """Register a site to an organisation; sources there with no owner become its."""
    with Vault.open(load_settings()) as vault:
        view = sites.register_site(vault, name, organisation=org, actor=Actor.local_operator())
    if json_out:
        print_json(asdict(view))
    else:
        typer.echo(f"site {view.name!r} belongs to {view.organisation} ({view.sources} sources)")


@site_app.command("list")
@reports_errors
def site_list(json_out: JsonOpt = False) -> None:
    """Registered sites, and the sources that no organisation owns yet."""
    with Vault.open(load_settings()) as vault:
        views = sites.list_sites(vault)
        unowned = [s.id for s in sites.unowned_sources(vault)]
    if json_out:
        print_json({"sites": [asdict(v) for v in views], "unowned_sources": unowned})
        return
    for v in views:
        typer.echo(f"{v.name:<32} {v.organisation:<32} {v.sources} sources")
    if unowned:
        typer.echo(f"{len(unowned)} sources belong to no organisation (every organisation's "
                   f"footage): {', '.join(unowned[:20])}{' ...' if len(unowned) > 20 else ''}")


__all__ = ["site_app"]
