"""Issue #15 build 1 (incremental verify of 100k events under 10 s): ``parse_entry`` checks an
entry with one JSON parse and one canonical encoding instead of rebuilding the event and encoding
it again. It must accept and refuse exactly what the rebuilding parser did."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest

from vault.errors import InvalidInput, LedgerError
from vault.ledger.entries import CustodyEvent, entry_bytes, parse_entry
from vault.ledger.rfc8785 import DECODER

T0 = dt.datetime(2026, 11, 1, 9, 30, 15, 123456, tzinfo=dt.UTC)
PREV = "ab" * 32


def _reference(entry: bytes) -> tuple[int, str, CustodyEvent]:
    """The parser before issue #15's speed-up: rebuild the event, compare the bytes."""
    try:
        data = DECODER.decode(entry.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, InvalidInput, RecursionError):
        raise LedgerError("not strict JSON") from None
    if not isinstance(data, dict) or set(data) != {"event", "prev", "seq", "v"}:
        raise LedgerError("keys")
    seq, prev = data["seq"], data["prev"]
    if data["v"] != 1 or isinstance(data["v"], bool):
        raise LedgerError("version")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 0:
        raise LedgerError("seq")
    if not isinstance(prev, str) or len(prev) != 64 or prev.strip("0123456789abcdef"):
        raise LedgerError("prev")
    try:
        built = CustodyEvent.from_dict(data["event"])
    except InvalidInput as exc:
        raise LedgerError(str(exc)) from None
    if entry_bytes(seq, prev, built) != entry:
        raise LedgerError("not canonical")
    return seq, prev, built


def _events() -> list[CustodyEvent]:
    return [
        CustodyEvent(action="viewed", actor="officer-1", ts=T0),
        CustodyEvent(action="ingested", actor="système", ts=T0, object_ids=("rec-1", "rec-2"),
                     hashes={"rec-1": "0f" * 32}, purpose="", reference="ASB/1",
                     details={"catalog": {"captured_start": "2026-11-01T09:00:00Z", "size": 10},
                              "list": [1, -2, "ü", None, True], "😀": "é\u2028"}),
        CustodyEvent(action="area.custom_kind", actor="a", ts=T0, actor_role="auditor",
                     actor_org="Org", lawful_basis="x" * 256, recipient="r", recipient_org="o",
                     client_addr="10.0.0.1", details={"n": 2**53 - 1}),
    ]


def _mutations(entry: str) -> list[str]:
    out = [
        entry.replace('"seq":7', '"seq": 7'),
        entry.replace('"v":1', '"v":2'),
        entry.replace('"v":1}', '"v":1,"v":1}'),
        entry.replace('"actor_org":null', '"actor_org":""'),
        entry.replace('"purpose":null', '"purpose":""'),
        entry.replace('"object_ids":[]', '"object_ids":["x","x"]'),
        entry.replace('"object_ids":[]', '"object_ids":"x"'),
        entry.replace('"details":{}', '"details":[]'),
        entry.replace('"details":{}', '"details":{"b":1,"a":2}'),
        entry.replace('"details":{}', '"details":{"a":1.5}'),
        entry.replace('"hashes":{}', '"hashes":{"r":"' + "AB" * 32 + '"}'),
        entry.replace('"hashes":{}', '"hashes":{"":"' + "ab" * 32 + '"}'),
        entry.replace('"hashes":{}', '"hashes":{"r":"' + "ab" * 31 + '"}'),
        entry.replace("2026-11-01T09:30:15.123456Z", "2026-02-30T09:30:15.123456Z"),
        entry.replace("2026-11-01T09:30:15.123456Z", "2026-11-01T09:30:15Z"),
        entry.replace('"action":"viewed"', '"action":"nonsense"'),
        entry.replace('"action":"viewed"', '"action":7'),
        entry.replace('"actor":"officer-1"', '"actor":""'),
        entry.replace('"actor":"officer-1"', '"actor":"' + "x" * 257 + '"'),
        entry.replace('"event_id":"', '"event_id":"' + "x" * 200),
        entry.replace('"actor":"officer-1"', '"actor":"officer\\u002d1"'),
        entry.replace('"recipient":null', '"recipient":null,"extra":null'),
        entry.replace('"prev":"' + PREV, '"prev":"' + PREV.upper()),
        entry.replace('{"event":', '{"event": '),
        entry + " ",
    ]
    return [m for m in out if m != entry]


@pytest.mark.parametrize("index", range(3))
def test_parse_entry_accepts_and_refuses_exactly_what_rebuilding_did(index: int) -> None:
    """Issue #15 build 1: each valid entry parses to the same event (same bytes) either way,
    and every mutation is refused by both (or, where still canonical and valid, accepted by
    both with the same event)."""
    event = _events()[index]
    entry = entry_bytes(7, PREV, event)
    assert parse_entry(entry) == _reference(entry)
    assert parse_entry(entry)[2].to_bytes() == event.to_bytes()
    checked = 0
    for mutated in _mutations(entry.decode("utf-8")):
        data = mutated.encode("utf-8")
        try:
            expected: Any = _reference(data)
        except LedgerError:
            expected = LedgerError
        try:
            got: Any = parse_entry(data)
        except LedgerError:
            got = LedgerError
        assert got == expected, mutated
        checked += 1
    assert checked >= 10
