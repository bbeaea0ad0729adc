"""The officers' casework pages: watch and cut a clip, cases, shares.

The same decisions as the API, from the same functions: a clip is authorised by
:func:`api.routes.clips.authorise_clip` and cut by :func:`redaction.clips.assemble_clip` (the
``POST /clips`` path); cases by :func:`vault.casework.policy.require_case` and :mod:`vault.casework.cases`; shares
by :func:`vault.casework.policy.require_recording` / :func:`vault.casework.policy.require_share` and
:mod:`vault.casework.shares`. A form is checked for its CSRF token before anything else, and a refused
one changes nothing. The custody history of a case's items carries a "verified" mark: the
item's events are proved against the ledger's signed checkpoint
(:func:`vault.casework.disclosure.event_proofs`) and each proof checked with the ledger's verifier key
(:meth:`vault.ledger.custody.CustodyLedger.verify_inclusion_proof`), as a recipient would check it.

Why this module is long: it is one journey, watch → clip → case → share, whose pages post to
one another (the watch page's clip and case forms, the case page's share link) and are reviewed
together; the case page's batched, proved history is most of its length.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Path, Query, Request
from fastapi.responses import Response
from sqlalchemy import and_, func, or_, select

from redaction.clips import MAX_WINDOW, assemble_clip
from vault.casework import cases as case_ops
from vault.casework import shares as share_ops
from vault.storage.catalog import CaseStatus, Recording, Source
from vault.ledger.checkpoint import Checkpoint
from vault.ledger.custody import CustodyEventObjectRow, CustodyEventRow, CustodyLedger, EventRecord
from vault.ledger.tables import unpack_entry
from vault.casework.disclosure import event_proofs
from vault.errors import InvalidInput, LedgerError, NotFound
from vault.casework.holds import list_holds
from vault.access.identity import Principal
from vault.casework.policy import (
    ALL_ORGANISATIONS,
    Permission,
    allowed,
    case_scope,
    is_scoped,
    require_recording,
    visible_events,
    visible_holds,
    visible_recordings,
)
from vault.vault import Vault

from ..deps import MAX_FIELD, MAX_PURPOSE
from ..routes.clips import authorise_clip
from ..schemas import UUID_PATTERN
from . import _security as sec
from .routes import (
    SCRUB_TILES,
    page,
    _settings,
    templates,
    _vault,
    WebContext,
    WebContextDep,
    WebFormDep,
    WebUser,
)
from .uktime import parse_uk, to_uk

router = APIRouter(route_class=sec.make_route_class(templates), include_in_schema=False)

RecordingId = Annotated[str, Path(pattern=UUID_PATTERN)]
CaseId = Annotated[str, Path(pattern=UUID_PATTERN)]
ShareId = Annotated[str, Path(pattern=UUID_PATTERN)]
#: Custody events shown per item on a case page; the rest are a "more events" link away, so
#: an item viewed ten thousand times costs the page no more than one viewed fifty.
HISTORY_LIMIT = 50
DEFAULT_SHARE_DAYS = 14
SHARE_PATH = "/s"
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+\.[^@\s<>]+$")
_TIME_FORM = {"day": "", "start": "", "end": ""}


# --- watch and clip ----------------------------------------------------------------------------


def _neighbours(vault: Vault, principal: Principal, recording: Recording) -> dict[str, str | None]:
    """The previous and next original recordings of the same camera the principal may see:
    a clip across a segment boundary starts on one and ends on the next."""
    base = (select(Recording.id).where(
        Recording.source_id == recording.source_id, Recording.parent_id.is_(None),
        Recording.deleted_at.is_(None), Recording.id != recording.id,
        visible_recordings(principal)).limit(1))
    with vault.sessions() as session:
        after = session.scalar(base.where(Recording.captured_start >= recording.captured_start)
                               .order_by(Recording.captured_start, Recording.id))
        before = session.scalar(base.where(Recording.captured_start < recording.captured_start)
                                .order_by(Recording.captured_start.desc(), Recording.id))
    return {"next": after, "previous": before}


def _writable_cases(vault: Vault, principal: Principal) -> list[Any]:
    """Open cases the principal may add evidence to (members' cases for ASB officers)."""
    if not allowed(principal.role, Permission.CASE_WRITE):
        return []
    member, org = case_scope(principal)
    rows = case_ops.list_cases(vault, member_id=member, organisation=org, limit=200)
    return [case for case, _ in rows if case.status == CaseStatus.OPEN]


def _clip_sources(vault: Vault, principal: Principal, recording: Recording) -> list[dict[str, Any]]:
    """The recordings a clip was cut from (its provenance), each with whether the principal
    may open it."""
    provenance = recording.provenance or {}
    if provenance.get("kind") != "clip":
        return []
    out = []
    for item in provenance.get("sources") or ():
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            out.append({**item, "captured": dt.datetime.fromisoformat(str(item["captured_start"]))})
    return out


def watch_page(request: Request, user: WebUser, recording: Recording, *,
               form: dict[str, str] | None = None, errors: dict[str, str] | None = None,
               status: int = 200) -> Response:
    """The watch page: player, clip form (mark in and out), add to a case, details."""
    vault = _vault(request)
    with vault.sessions() as session:
        source = session.get(Source, recording.source_id)
    seconds = None
    if recording.captured_end is not None:
        seconds = math.ceil((recording.captured_end - recording.captured_start).total_seconds())
    fps = (recording.media_info or {}).get("fps")
    clip_form = dict(form or _TIME_FORM)
    clip_form.setdefault("day", "")
    if not clip_form["day"]:
        clip_form["day"] = f"{to_uk(recording.captured_start):%Y-%m-%d}"
    return page(request, "watch.html", {
        "csrf": user.csrf, "recording": recording, "source": source, "seconds": seconds,
        "purpose": user.session.purpose,
        "fps": fps if isinstance(fps, (int, float)) and 1 <= fps <= 240 else None,
        "clip_form": clip_form, "errors": errors or {},
        "can_clip": allowed(user.principal.role, Permission.DOWNLOAD)
        and recording.parent_id is None,
        "can_share": allowed(user.principal.role, Permission.SHARE_CREATE),
        "can_create_case": allowed(user.principal.role, Permission.CASE_CREATE),
        "neighbours": _neighbours(vault, user.principal, recording),
        "cases": _writable_cases(vault, user.principal),
        "made_from": _clip_sources(vault, user.principal, recording),
        "made": request.query_params.get("made") == "1",
        "max_clip_minutes": int(MAX_WINDOW.total_seconds() // 60),
        "scrub_tiles": SCRUB_TILES,
    }, status=status)


@router.get("/watch/{recording_id}")
def watch(ctx: WebContextDep, recording_id: RecordingId) -> Response:
    recording = ctx.require_recording(Permission.VIEW, recording_id)
    if ctx.session.purpose is None:
        return sec.redirect(f"/purpose?next=/watch/{recording.id}")
    return watch_page(ctx.request, ctx.user, recording)


@router.post("/watch/{recording_id}/clip")
def cut_clip(
    ctx: WebFormDep,
    recording_id: RecordingId,
    day: Annotated[str, Form(max_length=32)] = "",
    start: Annotated[str, Form(max_length=32)] = "",
    end: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """Cut the marked window of this recording's camera into an incident clip: the API's
    ``POST /clips`` decision and assembly, with the task's purpose."""
    recording = ctx.require_recording(Permission.VIEW, recording_id)
    purpose = ctx.user.session.purpose
    if purpose is None:
        return sec.redirect(f"/purpose?next=/watch/{recording.id}")
    form = {"day": day.strip(), "start": start.strip(), "end": end.strip()}
    errors: dict[str, str] = {}
    since = until = None
    try:
        since = parse_uk(form["day"], form["start"], field="Clip start", edge="start")
    except InvalidInput as error:
        errors["clip-start"] = str(error) if form["start"] else (
            "Clip start: mark in on the player, or type the UK time, for example 14:30:04")
    try:
        until = parse_uk(form["day"], form["end"], field="Clip end", edge="end")
    except InvalidInput as error:
        errors["clip-end"] = str(error) if form["end"] else (
            "Clip end: mark out on the player, or type the UK time, for example 14:30:09")
    if since is not None and until is not None:
        if until <= since:
            errors["clip-end"] = ("Clip end: the clip must end after it starts (a clip over "
                                  "midnight is two clips)")
        elif until - since > MAX_WINDOW:
            errors["clip-end"] = (f"Clip end: a clip is at most "
                                  f"{int(MAX_WINDOW.total_seconds() // 60)} minutes; cut two")
    if errors or since is None or until is None:
        return watch_page(ctx.request, ctx.user, recording, form=form, errors=errors, status=400)
    since, until = authorise_clip(ctx, recording.source_id, since, until)
    try:
        clip = assemble_clip(ctx.vault, recording.source_id, since, until, actor=ctx.principal.actor,
                             purpose=purpose, method="auto")
    except (InvalidInput, NotFound) as error:  # e.g. no footage in the window
        return watch_page(ctx.request, ctx.user, recording, form=form,
                          errors={"clip-start": f"The clip could not be cut: {error}"}, status=400)
    return sec.redirect(f"/watch/{clip.recording.id}?made=1")


# --- cases -----------------------------------------------------------------------------------


@router.get("/casework")
def cases(ctx: WebContextDep) -> Response:
    principal = ctx.principal
    ctx.require(Permission.CASE_READ)
    member, org = case_scope(principal)
    rows = case_ops.list_cases(ctx.vault, member_id=member, organisation=org, limit=500)
    return page(ctx.request, "cases.html", {
        "cases": rows, "can_create": allowed(principal.role, Permission.CASE_CREATE)})


def _new_case_page(request: Request, user: WebUser, values: dict[str, str],
                   errors: dict[str, str], status: int = 200) -> Response:
    return page(request, "case_new.html", {"csrf": user.csrf, "values": values, "errors": errors},
                status=status)


@router.get("/casework/new")
def new_case(ctx: WebContextDep,
             recording: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None) -> Response:
    ctx.require(Permission.CASE_CREATE)
    if recording:
        ctx.require_recording(Permission.READ, recording)
    return _new_case_page(ctx.request, ctx.user, {"reference": "", "title": "", "crime_number": "",
                                          "recording": recording or ""}, {})


@router.post("/casework")
def create_case(
    ctx: WebFormDep,
    reference: Annotated[str, Form(max_length=129)] = "",
    title: Annotated[str, Form(max_length=513)] = "",
    crime_number: Annotated[str, Form(max_length=129)] = "",
    recording: Annotated[str, Form(max_length=36)] = "",
) -> Response:
    """A new case with the officer as its member (and, from the watch page, its first item)."""
    ctx.require(Permission.CASE_CREATE)
    values = {"reference": reference.strip(), "title": title.strip(),
              "crime_number": crime_number.strip(), "recording": recording.strip()}
    if values["recording"]:
        if not re.fullmatch(UUID_PATTERN, values["recording"]):
            raise NotFound("there is no recording with that id")
        # Decided before the case exists, so a refusal leaves nothing behind.
        ctx.require_recording(Permission.READ, values["recording"])
    if not values["reference"]:
        return _new_case_page(ctx.request, ctx.user, values, {
            "reference": "Enter the case reference, for example ASB/2026/0142"}, status=400)
    try:
        case = case_ops.create_case(
            ctx.vault, reference=values["reference"], organisation=ctx.principal.organisation,
            actor=ctx.principal.actor, title=values["title"] or None,
            crime_number=values["crime_number"] or None, member_ids=(ctx.principal.user_id,))
    except InvalidInput as error:
        field = "crime_number" if "crime" in str(error) else (
            "title" if "title" in str(error) else "reference")
        return _new_case_page(ctx.request, ctx.user, values, {field: str(error).capitalize()}, status=400)
    if values["recording"]:
        case_ops.link_recording(ctx.vault, case.id, values["recording"], actor=ctx.principal.actor,
                                purpose=ctx.user.session.purpose)
    return sec.redirect(f"/casework/{case.id}")


@dataclass(frozen=True)
class HistoryRow:
    """One custody event in an item's history, and whether its inclusion proof verified."""

    record: EventRecord
    verified: bool
    problem: str | None


@dataclass(frozen=True)
class History:
    """The part of one item's custody history a case page shows: ``rows`` are its visible
    events ``start`` + 1 .. ``start`` + len(rows), oldest first, out of ``total``."""

    rows: list[HistoryRow]
    start: int
    total: int

    @property
    def more(self) -> int:
        """Visible events after the ones shown (the "N more events" link's N)."""
        return max(0, self.total - self.start - len(self.rows))


def _visible_histories(vault: Vault, principal: Principal, ids: list[str],
                       starts: dict[str, int]) -> dict[str, tuple[int, list[EventRecord]]]:
    """For each item: how many custody events naming it the principal may read, and
    HISTORY_LIMIT of them from ``starts[item]`` (default 0), oldest first.

    One statement for every item, whatever their number: the links are read on the
    ``(object_id, seq)`` key, the reader's boundary (:func:`vault.casework.policy.visible_events`,
    narrowed: checked per candidate event) is applied once, and each item's events are
    numbered in SQL so a busy item cannot crowd the others off the page.
    """
    link = CustodyEventObjectRow
    ranked = (
        select(link.object_id, link.seq,
               func.row_number().over(partition_by=link.object_id, order_by=link.seq).label("n"),
               func.count().over(partition_by=link.object_id).label("total"))
        .join(CustodyEventRow, CustodyEventRow.seq == link.seq)
        .where(link.object_id.in_(ids), visible_events(principal, narrowed=True))
        .subquery())
    shown = or_(*(and_(ranked.c.object_id == rid, ranked.c.n > starts.get(rid, 0),
                       ranked.c.n <= starts.get(rid, 0) + HISTORY_LIMIT) for rid in ids))
    query = (select(ranked.c.object_id, ranked.c.total, CustodyEventRow.seq, CustodyEventRow.entry)
             .join(CustodyEventRow, CustodyEventRow.seq == ranked.c.seq)
             .where(shown).order_by(ranked.c.object_id, ranked.c.seq))
    # Items with no visible event at all have no row: they show an empty history.
    out: dict[str, tuple[int, list[EventRecord]]] = {rid: (0, []) for rid in ids}
    with vault.sessions() as session:
        for row in session.execute(query):
            total, records = out[row.object_id]
            records.append(EventRecord.from_entry(unpack_entry(row.entry, row.seq)))
            out[row.object_id] = (row.total, records)
    # An item whose shown window is past its end (a stale "more" link) still needs its count.
    missing = [rid for rid, (total, _) in out.items() if total == 0 and starts.get(rid)]
    if missing:
        with vault.sessions() as session:
            for rid, total in session.execute(
                    select(link.object_id, func.count())
                    .join(CustodyEventRow, CustodyEventRow.seq == link.seq)
                    .where(link.object_id.in_(missing), visible_events(principal, narrowed=True))
                    .group_by(link.object_id)):
                out[rid] = (total, [])
    return out


def _histories(vault: Vault, principal: Principal, ids: list[str],
               starts: dict[str, int] | None = None) -> tuple[dict[str, History] | None,
                                                              int | None]:
    """Each item's custody events the principal may read (None: their role reads no custody
    log), HISTORY_LIMIT an item from ``starts`` (default: its first), each with a verified
    mark, and the checkpoint size they were proved against.

    All the page's events are proved in one batch against one signed checkpoint
    (:func:`vault.casework.disclosure.event_proofs`, the export's path: one read of the stored tree)
    and each proof checked with the ledger's verifier key, the checkpoint's signature
    verified once for the batch. An event whose proof fails is shown unverified with the
    reason; the page still answers."""
    if not allowed(principal.role, Permission.CUSTODY_READ):
        return None, None
    found = _visible_histories(vault, principal, ids, starts or {})
    seqs = sorted({e.seq for _total, events in found.values() for e in events})
    problems: dict[int, str] = {}
    size = None
    try:
        proofs = event_proofs(vault, seqs)
    except (LedgerError, NotFound) as error:
        proofs, problems = {}, {seq: str(error) for seq in seqs}
    vkey = vault.ledger.verifier_key()
    opened: dict[tuple[str, str, Any], Checkpoint] = {}
    for seq, proof in proofs.items():
        size = proof["tree_size"]
        try:
            CustodyLedger.verify_inclusion_proof(proof, vkey, origin=vault.ledger.origin,
                                                 opened=opened)
        except LedgerError as error:
            problems[seq] = str(error)
    histories = {
        rid: History([HistoryRow(e, e.seq in proofs and e.seq not in problems,
                                 problems.get(e.seq)) for e in events],
                     (starts or {}).get(rid, 0), total)
        for rid, (total, events) in found.items()}
    return histories, size


@router.get("/casework/{case_id}")
def case_page(
    ctx: WebContextDep, case_id: CaseId,
    item: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None,
    after: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> Response:
    """The case: items, holds, members and each item's custody history (``item`` and
    ``after``: that item's history from its event ``after`` + 1, the "more events" link)."""
    request, user, vault, principal = ctx.request, ctx.user, ctx.vault, ctx.principal
    case = ctx.require_case(Permission.CASE_READ, case_id)
    _case, org, recording_ids, members = case_ops.case_details(vault, case_id)
    with vault.sessions() as session:
        items = {r.id: r for r in session.scalars(select(Recording).where(
            Recording.id.in_(recording_ids)))}
        sources = {s.id: s for s in session.scalars(select(Source).where(
            Source.id.in_({r.source_id for r in items.values()})))}
    ordered = [items[rid] for rid in recording_ids if rid in items]
    holds = list_holds(vault, case_id=case_id, active=None, scope=visible_holds(principal))
    starts = {item: after} if item in items else {}
    histories, checkpoint_size = _histories(vault, principal, [r.id for r in ordered], starts)
    can_write = allowed(principal.role, Permission.CASE_WRITE)
    return page(request, "case.html", {
        "csrf": user.csrf, "case": case, "organisation": org, "items": ordered,
        "sources": sources, "members": members, "holds": holds, "histories": histories,
        "checkpoint_size": checkpoint_size, "can_write": can_write,
        "can_share": allowed(principal.role, Permission.SHARE_CREATE),
        "errors": {}, "open": case.status == CaseStatus.OPEN, "history_limit": HISTORY_LIMIT,
    })


@router.post("/casework/link")
def add_item(ctx: WebFormDep,
             case: Annotated[str, Form(max_length=36)] = "",
             recording: Annotated[str, Form(max_length=36)] = "") -> Response:
    """Add a recording (a clip brings the recordings it was cut from) to the chosen case."""
    if not re.fullmatch(UUID_PATTERN, case) or not re.fullmatch(UUID_PATTERN, recording):
        raise InvalidInput("Choose a case and a recording, then try again")
    case_id = case
    ctx.require_case(Permission.CASE_WRITE, case_id)
    ctx.require_recording(Permission.READ, recording)
    case_ops.link_recording(ctx.vault, case_id, recording, actor=ctx.principal.actor,
                            purpose=ctx.user.session.purpose)
    return sec.redirect(f"/casework/{case_id}#items")


@router.post("/casework/{case_id}/members")
def add_member(ctx: WebFormDep, case_id: CaseId,
               name: Annotated[str, Form(max_length=256)] = "") -> Response:
    ctx.require_case(Permission.CASE_WRITE, case_id)
    if not name.strip():
        raise InvalidInput("Enter the user name of the colleague to add, then try again")
    case_ops.add_member(ctx.vault, case_id, name.strip(), actor=ctx.principal.actor)
    return sec.redirect(f"/casework/{case_id}#members")


def _case_change(ctx: WebContext, case_id: str, reason: str, *, close: bool) -> Response:
    vault, principal = ctx.vault, ctx.principal
    ctx.require_case(Permission.CASE_WRITE, case_id)
    if not reason.strip():
        raise InvalidInput(f"Say why the case is being {'closed' if close else 'reopened'}: "
                           "go back and enter a reason")
    change = case_ops.close_case if close else case_ops.reopen_case
    change(vault, case_id, actor=principal.actor, reason=reason.strip())
    return sec.redirect(f"/casework/{case_id}")


@router.post("/casework/{case_id}/close")
def close_case(ctx: WebFormDep, case_id: CaseId,
               reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Close the case: its items are no longer kept for it (other holds still keep them)."""
    return _case_change(ctx, case_id, reason, close=True)


@router.post("/casework/{case_id}/reopen")
def reopen_case(ctx: WebFormDep, case_id: CaseId,
                reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    return _case_change(ctx, case_id, reason, close=False)


# --- shares ----------------------------------------------------------------------------------


def share_link(request: Request, token: str) -> str:
    """The full link a recipient opens: ``web_public_url`` (behind a proxy) or this request's
    own address, then ``/s/<token>``."""
    base = _settings(request).web_public_url or str(request.base_url)
    return f"{base.rstrip('/')}{SHARE_PATH}/{token}"


def _shared_items(vault: Vault, principal: Principal, ids: list[str],
                  route: str) -> list[Recording]:
    return [require_recording(vault, principal, Permission.SHARE_CREATE, rid, route=route)
            for rid in dict.fromkeys(ids)]


def _share_form(request: Request, user: WebUser, items: list[Recording], values: dict[str, str],
                errors: dict[str, str], status: int = 200) -> Response:
    return page(request, "share_new.html", {"csrf": user.csrf, "items": items, "values": values,
                                            "errors": errors}, status=status)


@router.get("/sharing/new")
def new_share(ctx: WebContextDep,
              recording: Annotated[list[str], Query(max_length=50)] = []) -> Response:  # noqa: B006
    request, user, vault, principal = ctx.request, ctx.user, ctx.vault, ctx.principal
    ctx.require(Permission.SHARE_CREATE)
    ids = [r for r in recording if re.fullmatch(UUID_PATTERN, r)]
    if not ids:
        raise InvalidInput("Choose what to share: open a recording or a case and use "
                           "'Share with someone outside'")
    items = _shared_items(vault, principal, ids, ctx.route)
    expires = to_uk(vault.clock() + dt.timedelta(days=DEFAULT_SHARE_DAYS))
    values = {"recipient": "", "email": "", "recipient_org": "", "purpose": "",
              "reference": (user.session.purpose.reference or "") if user.session.purpose else "",
              "lawful_basis": "", "expires": f"{expires:%Y-%m-%d}", "access": "view",
              "max_downloads": ""}
    return _share_form(request, user, items, values, {})


@router.post("/sharing")
def create_share(
    ctx: WebFormDep,
    recording: Annotated[list[str], Form(max_length=50)] = [],  # noqa: B006
    recipient: Annotated[str, Form(max_length=257)] = "",
    email: Annotated[str, Form(max_length=257)] = "",
    recipient_org: Annotated[str, Form(max_length=257)] = "",
    purpose: Annotated[str, Form(max_length=MAX_PURPOSE + 1)] = "",
    reference: Annotated[str, Form(max_length=MAX_FIELD + 1)] = "",
    lawful_basis: Annotated[str, Form(max_length=MAX_FIELD + 1)] = "",
    expires: Annotated[str, Form(max_length=32)] = "",
    access: Annotated[str, Form(max_length=16)] = "view",
    max_downloads: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """Create the share and show its link once (only the token's hash is kept)."""
    ctx.require(Permission.SHARE_CREATE)
    ids = [r for r in recording if re.fullmatch(UUID_PATTERN, r)]
    if not ids:
        raise InvalidInput("Choose what to share: open a recording or a case and use "
                           "'Share with someone outside'")
    items = _shared_items(ctx.vault, ctx.principal, ids, ctx.route)
    values = {"recipient": recipient.strip(), "email": email.strip(),
              "recipient_org": recipient_org.strip(), "purpose": purpose.strip(),
              "reference": reference.strip(), "lawful_basis": lawful_basis.strip(),
              "expires": expires.strip(), "access": access, "max_downloads": max_downloads.strip()}
    errors: dict[str, str] = {}
    if not values["recipient"]:
        errors["recipient"] = "Enter the name of the person you are sharing with"
    if not _EMAIL.fullmatch(values["email"]):
        errors["email"] = "Enter the recipient's email address, like name@police.example.uk"
    if not values["recipient_org"]:
        errors["recipient_org"] = "Enter their organisation, for example the police force"
    if not values["purpose"]:
        errors["purpose"] = "Say why they need this footage; it is shown to them and logged"
    if not values["lawful_basis"]:
        errors["lawful_basis"] = "Enter the lawful basis for the disclosure"
    expires_at = None
    try:
        expires_at = parse_uk(values["expires"], "23:59:59", field="Expiry", edge="end")
        if expires_at <= ctx.vault.clock():
            errors["expires"] = "Expiry: choose a date from today on"
    except InvalidInput as error:
        errors["expires"] = str(error)
    if access not in ("view", "download"):
        errors["access"] = "Choose view only, or view and download"
    limit = None
    if access == "download" and values["max_downloads"]:
        if not values["max_downloads"].isdigit() or not 1 <= int(values["max_downloads"]) <= 1000:
            errors["max_downloads"] = ("Download limit: a whole number from 1 to 1000, or "
                                       "leave it empty")
        else:
            limit = int(values["max_downloads"])
    if errors or expires_at is None:
        return _share_form(ctx.request, ctx.user, items, values, errors, status=400)
    try:
        created = share_ops.create_share(
            ctx.vault, actor=ctx.principal.actor,
            # The share has one recipient field: the person and the address it was sent to,
            # as they appear in the custody log's `shared` event.
            recipient=f"{values['recipient']} <{values['email']}>",
            recipient_org=values["recipient_org"], purpose=values["purpose"],
            lawful_basis=values["lawful_basis"], reference=values["reference"] or None,
            recording_ids=[r.id for r in items], expires_at=expires_at,
            allow_download=access == "download", max_downloads=limit)
    except InvalidInput as error:
        return _share_form(ctx.request, ctx.user, items, values, {"recipient": str(error)}, status=400)
    return page(ctx.request, "share_created.html", {
        "share": created.share, "items": items, "link": share_link(ctx.request, created.token)})


def _share_scope(principal: Principal) -> tuple[str | None, str | None]:
    """(created_by, organisation) filters: the API's list_shares rule."""
    if is_scoped(principal):
        return principal.name, None
    if principal.role not in ALL_ORGANISATIONS:
        return None, principal.organisation
    return None, None


@router.get("/sharing")
def shares(ctx: WebContextDep) -> Response:
    request, user, vault, principal = ctx.request, ctx.user, ctx.vault, ctx.principal
    ctx.require(Permission.SHARE_READ)
    created_by, org = _share_scope(principal)
    rows = share_ops.list_shares(vault, created_by=created_by, organisation=org, limit=500)
    now = vault.clock()
    return page(request, "shares.html", {
        "csrf": user.csrf, "now": now,
        "shares": [(s, ids, share_ops.share_state(s, now)) for s, ids in rows],
        "can_revoke": allowed(principal.role, Permission.SHARE_REVOKE)})


@router.post("/sharing/{share_id}/revoke")
def revoke_share(ctx: WebFormDep, share_id: ShareId,
                 reason: Annotated[str, Form(max_length=2000)] = "") -> Response:
    """Revoke a share: its link stops working at once."""
    found = share_ops.get_share(ctx.vault, share_id)
    ctx.require_share(Permission.SHARE_REVOKE, found[0] if found else None,
                  share_id)
    if not reason.strip():
        raise InvalidInput("Say why the share is being revoked: go back and enter a reason")
    share_ops.revoke_share(ctx.vault, share_id, actor=ctx.principal.actor, reason=reason.strip())
    return sec.redirect("/sharing")


__all__ = ["HISTORY_LIMIT", "SHARE_PATH", "router", "share_link", "watch_page"]
