"""Custody routes: query the ledger, verify it, prove one event, fetch the signed checkpoint.

For auditors, information-governance officers and administrators. Reading the ledger releases
no footage. A recipient checks an inclusion proof offline with the verifier key alone
(:meth:`vault.ledger.custody.CustodyLedger.verify_inclusion_proof`).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from vault.casework.cases import case_details
from vault.ledger.checkpoint import open_checkpoint
from vault.ledger.custody import EventRecord, parse_action
from vault.errors import InvalidInput
from vault.casework.fixity import check_fixity
from vault.casework.policy import Permission, visible_events

from ..deps import ContextDep
from ..errors import responses
from ..schemas import (
    FixityRequest,
    FixityResult,
    UUID_PATTERN,
    CheckpointPublic,
    CustodyEventList,
    CustodyEventPublic,
    InclusionProof,
    KeyHandover,
    Instant,
    VerifyResult,
)

router = APIRouter(prefix="/custody", tags=["custody"])

Seq = Annotated[int, Path(ge=0, le=2**53 - 1, description="Event sequence number.")]
MAX_CASE_OBJECTS = 500


def _public(record: EventRecord) -> CustodyEventPublic:
    return CustodyEventPublic(**record.to_dict())


@router.get(
    "/events",
    summary="Query custody events",
    description="Events oldest first, filtered by item (recording, case, share or user id), "
    "user, action, reference and time. `case_id` gives the case's whole history: its own "
    "events, its reference's, and those of every recording linked to it.",
    response_model=CustodyEventList,
    responses=responses(400, 401, 403, 404),
)
def events(
    ctx: ContextDep,
    item: Annotated[str | None, Query(max_length=128, description="Object id named by the event.")] = None,
    user: Annotated[str | None, Query(max_length=256, description="Who acted.")] = None,
    action: Annotated[str | None, Query(max_length=64, description="e.g. viewed, access_denied.")] = None,
    case_id: Annotated[str | None, Query(pattern=UUID_PATTERN)] = None,
    reference: Annotated[str | None, Query(max_length=256)] = None,
    since: Annotated[Instant | None, Query()] = None,
    until: Annotated[Instant | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> CustodyEventList:
    ctx.require(Permission.CUSTODY_READ)
    parsed = parse_action(action) if action else None
    # Narrowed by item, user, reference or case, the boundary is checked per candidate event;
    # over the whole log, once as a set (vault.casework.policy.visible_events says why).
    narrowed = any(x is not None for x in (item, user, reference, case_id))
    filters = {"actor": user, "action": parsed, "since": since, "until": until,
               "where": visible_events(ctx.principal, narrowed=narrowed)}
    if case_id is None:
        found = ctx.vault.ledger.events(
            object_id=item, reference=reference, limit=limit, offset=offset, **filters  # type: ignore[arg-type]
        )
        return CustodyEventList(items=[_public(r) for r in found], limit=limit, offset=offset)
    if item is not None or reference is not None:
        raise InvalidInput("case_id gives a case's whole history: use it without item or reference")
    ctx.require_case(Permission.CUSTODY_READ, case_id)
    case, _org, recording_ids, _members = case_details(ctx.vault, case_id)
    window = offset + limit
    merged: dict[int, EventRecord] = {}
    # One statement for the case and all its items (not one per item), one for its reference.
    queries: list[dict[str, Any]] = [
        {"object_ids": [case_id, *recording_ids[:MAX_CASE_OBJECTS]]},
        {"reference": case.reference},
    ]
    for query in queries:
        for record in ctx.vault.ledger.events(limit=window, **query, **filters):  # type: ignore[arg-type]
            merged[record.seq] = record
    page = [merged[s] for s in sorted(merged)][offset:window]
    return CustodyEventList(items=[_public(r) for r in page], limit=limit, offset=offset)


@router.get(
    "/events/{seq}",
    summary="One custody event",
    description="The ledger entry at `seq`: its canonical event and hash links.",
    response_model=CustodyEventPublic,
    responses=responses(401, 403, 404),
)
def event(ctx: ContextDep, seq: Seq) -> CustodyEventPublic:
    ctx.require_event(seq)
    return _public(ctx.vault.ledger.get(seq))


@router.get(
    "/events/{seq}/proof",
    summary="Inclusion proof of an event",
    description="An RFC 6962 audit path from the event to a signed checkpoint, checkable "
    "offline with the verifier key (signs a checkpoint now if none covers the event yet).",
    response_model=InclusionProof,
    responses=responses(401, 403, 404, 409),
)
def proof(ctx: ContextDep, seq: Seq) -> InclusionProof:
    ctx.require_event(seq)
    return InclusionProof(**ctx.vault.ledger.inclusion_proof(seq))


@router.get(
    "/verify",
    summary="Verify the custody ledger",
    description="Recompute every event, hash link, MAC, Merkle root and signed checkpoint, "
    "compare with the witnessed checkpoint, and compare every catalog row (source, capture "
    "times, size, SHA-256, retention date) with the ledger's record of it. `unsigned` counts "
    "the events no signature covers yet. 409 names the first event that does not verify, or "
    "the recordings whose rows differ from the ledger or lost their row.",
    response_model=VerifyResult,
    responses=responses(401, 403, 409),
)
def verify(ctx: ContextDep) -> VerifyResult:
    ctx.require(Permission.CUSTODY_VERIFY)
    report = ctx.vault.ledger.verify()
    return VerifyResult(ok=True, summary=report.summary(), **report.to_dict())


@router.post(
    "/fixity",
    summary="Prove stored footage intact",
    description="Read the named recordings (or a random `sample` of those held) back from "
    "storage, decrypt them and compare their SHA-256 with the catalog's. Failures (corrupt, "
    "missing, unreadable) are listed, not raised; nothing is repaired. Each batch is a "
    "`fixity_checked` custody event naming every recording checked.",
    response_model=FixityResult,
    responses=responses(400, 401, 403, 404, 410),
)
def fixity(ctx: ContextDep,
           body: FixityRequest) -> FixityResult:
    ctx.require(Permission.CUSTODY_VERIFY)
    if not body.recording_ids and body.sample is None:
        raise InvalidInput("name recording_ids or give a sample size")
    report = check_fixity(ctx.vault, actor=ctx.principal.actor, recording_ids=body.recording_ids or None,
                          sample=body.sample)
    data = report.to_dict()
    return FixityResult(**data, summary=report.summary())


@router.get(
    "/checkpoint",
    summary="Latest signed checkpoint",
    description="A C2SP signed checkpoint covering every event so far (signed now if events "
    "were added since the last one), and the verifier key. Keep copies outside the vault: a "
    "later `verify` against one catches a rollback.",
    response_model=CheckpointPublic,
    responses=responses(401, 403, 409),
)
def checkpoint(ctx: ContextDep) -> CheckpointPublic:
    ctx.require(Permission.CUSTODY_READ)
    note = ctx.vault.ledger.checkpoint()
    vkey = ctx.vault.ledger.verifier_key()
    cp = open_checkpoint(note, vkey, origin=ctx.vault.ledger.origin)
    return CheckpointPublic(
        origin=ctx.vault.ledger.origin,
        size=cp.size,
        checkpoint=note,
        verifier_key=vkey,
        key_handovers=[KeyHandover(**h) for h in ctx.vault.ledger.handovers()],
    )


__all__ = ["router"]
