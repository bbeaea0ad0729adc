"""The catalog bound to the custody ledger: every recording row says what the ledger recorded.

The catalog (``recordings``) decides who sees footage (its source, hence site and organisation)
and when it is deleted (capture time, retention date). Someone who can write the database but
not sign the ledger could otherwise move footage into an officer's scope, keep it past its
date or drop its row, and the ledger, intact, would not notice. So the event that creates a
recording records its catalog fields, and :func:`check_catalog` compares every row with them.

Catalog record v1, carried in the creating event's ``details["catalog"]``::

    {"v": 1, "source_id": ..., "captured_start": "<UTC ts>", "captured_end": "<UTC ts>"|null,
     "size": <int>, "retain_until": "<UTC ts>", "parent_id": ...|null}

with the SHA-256 in the event's ``hashes``. Events written before v1 (an ``ingested`` or other
creating event whose details hold ``source``, ``size`` and ``captured_start``) bind those
fields only.

Authorised changes after creation:

- ``retain_until``: any later event naming the recording with ``details["retain_until"]``,
  a timestamp (for every object the event names) or a map of recording id to timestamp. Code
  that moves a retention date must record such an event in the same transaction.
- deletion: a ``deleted`` event; the row must then show ``deleted_at`` (and a row marked
  deleted without one is reported: footage hidden from everyone with no record of why).

Problems found (:class:`CatalogProblem`): ``altered`` (a bound field differs), ``unrecorded``
(a row no event created), ``row_missing`` (a recording the ledger shows alive has no row),
``deleted_unrecorded`` and ``undeleted``. The check streams both sides in id order, so its
memory does not grow with the catalog or the ledger.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Protocol

from sqlalchemy import Connection, select

from vault.storage.catalog import Recording


class CustodyEvent(Protocol):
    """What this module reads of a custody event (:class:`vault.ledger.custody.CustodyEvent`).

    A protocol rather than an import: the ledger's ``verify`` calls :func:`check_catalog`, so
    importing the ledger here would close an import circle (issue #14)."""

    @property
    def action(self) -> Enum | str: ...
    @property
    def object_ids(self) -> tuple[str, ...]: ...
    @property
    def hashes(self) -> Mapping[str, str]: ...
    @property
    def details(self) -> Mapping[str, Any]: ...

RECORD_VERSION = 1
#: ``details`` key of the catalog record in a recording's creating event.
RECORD_KEY = "catalog"
#: Fields a catalog row must agree with the ledger on.
BOUND_FIELDS = (
    "source_id",
    "captured_start",
    "captured_end",
    "size",
    "sha256",
    "retain_until",
    "parent_id",
)
_TIME_FIELDS = frozenset({"captured_start", "captured_end", "retain_until"})
_LEGACY_FIELDS = {"source": "source_id", "size": "size", "captured_start": "captured_start"}
_BATCH = 2000


def _ts(value: dt.datetime | None) -> str | None:
    # One text per instant: UTC, microseconds, "Z".
    if value is None:
        return None
    if value.tzinfo is None:  # naive values from the database are UTC (UTCDateTime)
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")[:-6] + "Z"


def catalog_record(recording: Recording) -> dict[str, Any]:
    """The catalog record v1 of ``recording``, for its creating event's ``details``."""
    return {
        "v": RECORD_VERSION,
        "source_id": recording.source_id,
        "captured_start": _ts(recording.captured_start),
        "captured_end": _ts(recording.captured_end),
        "size": recording.size,
        "retain_until": _ts(recording.retain_until),
        "parent_id": recording.parent_id,
    }


@dataclass(frozen=True)
class CatalogProblem:
    """One recording whose catalog row and ledger record disagree."""

    recording_id: str
    kind: str  # altered, unrecorded, row_missing, deleted_unrecorded, undeleted
    detail: str
    seq: int | None = None  # the event that records what the row should say

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "recording_id": self.recording_id,
            "kind": self.kind,
            "detail": self.detail,
            "seq": self.seq,
        }

    def __str__(self) -> str:
        at = f" (event {self.seq})" if self.seq is not None else ""
        return f"recording {self.recording_id}: {self.kind}: {self.detail}{at}"


@dataclass
class CatalogReport:
    """What :func:`check_catalog` compared and found."""

    recordings: int = 0
    problems: list[CatalogProblem] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready fields."""
        return {
            "recordings": self.recordings,
            "problems": [p.to_dict() for p in self.problems],
            "passed": self.passed,
        }


@dataclass
class _Expected:
    """What the ledger says one recording's row holds."""

    fields: dict[str, Any] = field(default_factory=dict)
    created: int | None = None  # seq of the creating event
    deleted: int | None = None  # seq of the deleted event
    sources: dict[str, int] = field(default_factory=dict)  # field -> seq that set it


def _creation(rid: str, ev: CustodyEvent) -> dict[str, Any] | None:
    """The fields ``ev`` binds when it creates ``rid``; None when it does not create it."""
    details = ev.details
    record = details.get(RECORD_KEY)
    if isinstance(record, Mapping) and record.get("v") == RECORD_VERSION:
        if list(ev.object_ids) != [rid]:
            return None
        bound = {k: record.get(k) for k in BOUND_FIELDS if k != "sha256"}
        bound["sha256"] = ev.hashes.get(rid)
        return bound
    # Before catalog record v1: put_stream's own details, on the one object it stored.
    action = ev.action.value if hasattr(ev.action, "value") else ev.action
    if (
        action != "deleted"
        and list(ev.object_ids) == [rid]
        and rid in ev.hashes
        and all(k in details for k in _LEGACY_FIELDS)
    ):
        bound = {new: details[old] for old, new in _LEGACY_FIELDS.items()}
        bound["sha256"] = ev.hashes[rid]
        if "parent_id" in details:
            bound["parent_id"] = details["parent_id"]
        return bound
    return None


def _apply(expected: _Expected, rid: str, seq: int, ev: CustodyEvent) -> None:
    action = ev.action.value if hasattr(ev.action, "value") else ev.action
    if expected.created is None:
        bound = _creation(rid, ev)
        if bound is not None:
            expected.created = seq
            expected.fields = bound
            expected.sources = {k: seq for k in bound}
            return
    if action == "deleted":
        expected.deleted = seq
        return
    moved = ev.details.get("retain_until")
    if isinstance(moved, Mapping):
        moved = moved.get(rid)
    if isinstance(moved, str) and expected.created is not None:
        expected.fields["retain_until"] = moved
        expected.sources["retain_until"] = seq


def _same(name: str, recorded: Any, actual: Any) -> bool:
    if name in _TIME_FIELDS:
        if recorded is None or actual is None:
            return recorded is None and actual is None
        try:
            when = dt.datetime.fromisoformat(str(recorded))
        except ValueError:
            return False
        if when.tzinfo is None:
            return False  # the ledger always records an offset; a naive time is not ours
        return _ts(when) == _ts(actual)
    return bool(recorded == actual)


def _compare(rid: str, row: Any, expected: _Expected, report: CatalogReport) -> None:
    problems = report.problems
    if expected.created is None:
        problems.append(CatalogProblem(rid, "unrecorded", "no custody event created this row"))
        return
    for name, recorded in expected.fields.items():
        actual = getattr(row, name)
        if not _same(name, recorded, actual):
            shown = _ts(actual) if isinstance(actual, dt.datetime) else actual
            problems.append(
                CatalogProblem(
                    rid,
                    "altered",
                    f"{name} is {shown!r} in the catalog but {recorded!r} in the ledger",
                    expected.sources.get(name),
                )
            )
    if expected.deleted is not None and row.deleted_at is None:
        problems.append(
            CatalogProblem(rid, "undeleted", "the ledger records its deletion but the row is live",
                           expected.deleted)
        )
    if expected.deleted is None and row.deleted_at is not None:
        problems.append(
            CatalogProblem(rid, "deleted_unrecorded",
                           "the row is marked deleted but no custody event records a deletion")
        )


def _collated(column: Any, dialect: str) -> Any:
    # Both streams must come in the order Python's str comparison uses (code points).
    return column.collate("C" if dialect == "postgresql" else "BINARY")


def check_catalog(
    conn: Connection, object_events: Iterable[tuple[str, int, CustodyEvent]]
) -> CatalogReport:
    """Compare every catalog row with the ledger's record of it (see the module docstring).

    ``object_events`` yields (recording id, seq, event) for every event that may create, move
    or delete a recording, authenticated and ordered by recording id (code points), then seq:
    :meth:`vault.ledger.custody.CustodyLedger.check_catalog` supplies it. Returns the report; raises
    nothing for a mismatch (the caller decides).
    """
    report = CatalogReport()
    dialect = conn.dialect.name
    rows: Iterator[Any] = iter(
        conn.execute(
            select(
                Recording.id,
                Recording.source_id,
                Recording.captured_start,
                Recording.captured_end,
                Recording.size,
                Recording.sha256,
                Recording.retain_until,
                Recording.parent_id,
                Recording.deleted_at,
            )
            .order_by(_collated(Recording.id, dialect))
            .execution_options(yield_per=_BATCH)
        )
    )
    row = next(rows, None)

    def flush_rows_before(rid: str | None) -> None:
        # Rows with no event at all, up to (not including) ``rid``.
        nonlocal row
        while row is not None and (rid is None or row.id < rid):
            report.recordings += 1
            _compare(row.id, row, _Expected(), report)
            row = next(rows, None)

    current: str | None = None
    expected = _Expected()

    def settle(rid: str, exp: _Expected) -> None:
        nonlocal row
        flush_rows_before(rid)
        if row is not None and row.id == rid:
            report.recordings += 1
            _compare(rid, row, exp, report)
            row = next(rows, None)
        elif exp.created is not None and exp.deleted is None:
            report.problems.append(
                CatalogProblem(rid, "row_missing",
                               "the ledger shows this recording alive but the catalog has no row",
                               exp.created)
            )

    for rid, seq, ev in object_events:
        if rid != current:
            if current is not None:
                settle(current, expected)
            current, expected = rid, _Expected()
        _apply(expected, rid, seq, ev)
    if current is not None:
        settle(current, expected)
    flush_rows_before(None)
    return report


__all__ = [
    "BOUND_FIELDS",
    "RECORD_KEY",
    "CatalogProblem",
    "CatalogReport",
    "catalog_record",
    "check_catalog",
]
