"""Sites and the organisations that own their footage.

A vault may serve several organisations (a landlord, a partner landlord, the council's
community-safety team). Footage belongs to the organisation that runs the camera or device:
its source's ``organisation`` (vault/storage/catalog.py), set when the source is first seen from the
site registry here, or from ``settings.organisation`` for a source at no registered site.

Registering a site gives it an owner. Sources already at the site that had no owner take it
(one ``site.registered`` custody event names them, since this moves footage into an
organisation's sight); a source already owned by another organisation is a conflict an
administrator must resolve, never something a registration silently overrides.

A source with no owner at all is every organisation's: that is the single-organisation vault,
where nobody needs to say whose footage it is. :func:`unowned_sources` lists them, so an
administrator adding a second organisation can see what still needs an owner.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import func, select

from vault.actors import Actor
from vault.ledger.events import SiteRegistered
from vault.storage.catalog import Site, Source
from vault.errors import InvalidInput

if TYPE_CHECKING:
    from vault.vault import Vault

#: Custody action (dotted extension name).
REGISTERED = "site.registered"

_MAX = 256


@dataclass(frozen=True)
class SiteView:
    """A registered site, its owner and how many sources record there."""

    name: str
    organisation: str
    sources: int


def register_site(vault: Vault, name: str, *, organisation: str, actor: Actor) -> SiteView:
    """Register ``name`` as ``organisation``'s site; unowned sources there become its.

    Raises InvalidInput for an empty or over-long name or organisation, a site registered to
    another organisation, or a source at the site owned by another organisation.
    """
    name, organisation = (name or "").strip(), (organisation or "").strip()
    if not name or len(name) > _MAX:
        raise InvalidInput(f"a site name is required (at most {_MAX} characters)")
    if not organisation or len(organisation) > _MAX:
        raise InvalidInput(f"an organisation is required (at most {_MAX} characters)")
    with vault.sessions.begin() as session:
        site = session.get(Site, name)
        if site is not None and site.organisation != organisation:
            raise InvalidInput(
                f"site {name!r} is registered to {site.organisation!r}; footage does not change "
                "organisation by re-registering its site"
            )
        sources = list(session.scalars(select(Source).where(Source.site == name)))
        foreign = sorted(s.id for s in sources if s.organisation not in (None, organisation))
        if foreign:
            raise InvalidInput(
                f"sources at {name!r} already belong to another organisation: "
                f"{', '.join(foreign)}; give them their own site name"
            )
        adopted = sorted(s.id for s in sources if s.organisation is None)
        if site is None:
            session.add(Site(name=name, organisation=organisation, created_at=vault.clock()))
        for source in sources:
            source.organisation = organisation
        vault.ledger.append(
            session, REGISTERED, actor=actor, object_ids=[name, *adopted],
            details=SiteRegistered(site=name, organisation=organisation, sources=adopted),
        )
    vault.checkpoint_if_due()
    return SiteView(name=name, organisation=organisation, sources=len(sources))


def list_sites(vault: Vault) -> list[SiteView]:
    """Registered sites by name, with their source counts."""
    counts = (
        select(Source.site, func.count(Source.id).label("n")).group_by(Source.site).subquery()
    )
    with vault.sessions() as session:
        rows = session.execute(
            select(Site.name, Site.organisation, func.coalesce(counts.c.n, 0))
            .outerjoin(counts, counts.c.site == Site.name)
            .order_by(Site.name)
        ).all()
    return [SiteView(name=n, organisation=o, sources=int(c)) for n, o, c in rows]


def unowned_sources(vault: Vault) -> list[Source]:
    """Sources no organisation owns (every organisation's footage), by id."""
    with vault.sessions() as session:
        return list(session.scalars(
            select(Source).where(Source.organisation.is_(None)).order_by(Source.id)))


__all__ = ["REGISTERED", "SiteView", "list_sites", "register_site", "unowned_sources"]
