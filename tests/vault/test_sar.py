"""Subject access requests: the one-month deadline, holds that survive retention, extension,
disclosure and closing."""

from __future__ import annotations

import datetime as dt
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from vault.casework import sar as sars
from vault.actors import Actor, Role
from vault.storage.catalog import HoldKind, Recording, SourceKind
from vault.config import Settings
from vault.errors import InvalidInput, NotFound
from vault.storage.hold_rule import active_holds
from vault.casework.retention import run_retention
from vault.casework.sar import SarStatus, add_months, due_date
from vault.vault import Vault
from vault.capture import Capture

IG = Actor(user="ig-1", role=Role.IG_OFFICER, organisation="Northside Homes")
T0 = dt.datetime(2026, 11, 3, 9, 0, tzinfo=dt.UTC)


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(T0)


@pytest.fixture
def vault(tmp_path: Path, clock: Clock) -> Iterator[Vault]:
    with Vault.init(Settings(home=tmp_path / "home", segment_size=4096), clock=clock) as v:
        yield v


def _footage(vault: Vault, source: str, start: dt.datetime, minutes: int = 10) -> Recording:
    return vault.put_stream(
        io.BytesIO(os.urandom(5000)),
        Capture(
            source_id=source,
            source_kind=SourceKind.CCTV,
            site="Elm Court",
            captured_at=start,
            captured_end=start + dt.timedelta(minutes=minutes),
        ),
        actor=IG,
    )


# --- the deadline ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("received", "due"),
    [
        (dt.date(2026, 9, 3), dt.date(2026, 10, 3)),  # the corresponding calendar date
        (dt.date(2026, 1, 31), dt.date(2026, 2, 28)),  # no 31 February: the month's last day
        (dt.date(2028, 1, 31), dt.date(2028, 2, 29)),  # leap year
        (dt.date(2028, 1, 29), dt.date(2028, 2, 29)),
        (dt.date(2027, 1, 29), dt.date(2027, 2, 28)),
        (dt.date(2026, 3, 31), dt.date(2026, 4, 30)),
        (dt.date(2026, 12, 15), dt.date(2027, 1, 15)),  # across the year end
        (dt.date(2026, 2, 28), dt.date(2026, 3, 28)),  # not "end of month to end of month"
    ],
)
def test_due_one_calendar_month_after_receipt(received: dt.date, due: dt.date) -> None:
    assert due_date(received) == due


def test_extensions_add_up_to_two_months() -> None:
    assert due_date(dt.date(2026, 11, 30), 2) == dt.date(2027, 2, 28)
    assert due_date(dt.date(2027, 11, 30), 2) == dt.date(2028, 2, 29)
    assert add_months(dt.date(2026, 10, 31), 1) == dt.date(2026, 11, 30)
    with pytest.raises(InvalidInput):
        due_date(dt.date(2026, 1, 1), 3)


# --- the lifecycle ---------------------------------------------------------------------------


def test_registering_holds_footage_through_retention_until_closed(vault: Vault, clock: Clock) -> None:
    incident = T0 - dt.timedelta(days=2, hours=3)
    inside = _footage(vault, "cam-3", incident)
    outside = _footage(vault, "cam-3", incident - dt.timedelta(hours=5))
    other_camera = _footage(vault, "cam-4", incident)

    sar = sars.register_sar(vault, reference="SAR-2026-14", requester_name="A. Resident",
                            requester_contact="a.resident@example.org", received_on=T0.date(),
                            actor=IG, description="me at the stairwell, grey coat")
    assert sar.status == SarStatus.OPEN and sar.due_on == dt.date(2026, 12, 3)
    window = sars.attach_window(vault, sar.id, source_id="cam-3", start=incident,
                                end=incident + dt.timedelta(minutes=30), actor=IG)
    with vault.sessions() as session:
        holds = active_holds(session, session.get(Recording, inside.id))
        assert [(h.kind, h.reference) for h in holds] == [(HoldKind.SAR, "SAR-2026-14")]
        assert holds[0].id == window.hold_id

    # Footage from the window that a delayed agent delivers after the request is held too.
    clock.now = T0 + dt.timedelta(days=1)
    late = _footage(vault, "cam-3", incident + dt.timedelta(minutes=10))

    # 30 days later: the 23-day deletion takes everything except the held window.
    report = run_retention(vault, now=T0 + dt.timedelta(days=30))
    assert {d.recording_id for d in report.deleted} == {outside.id, other_camera.id}
    assert {d.recording_id for d in report.kept} == {inside.id, late.id}
    assert all("SAR-2026-14" in d.reason for d in report.kept)

    clock.now = T0 + dt.timedelta(days=31)
    # The master itself goes (the requester is alone in frame): a logged override (finding 21).
    disclosure = sars.record_disclosure(vault, sar.id, recording_ids=[inside.id],
                                        method="secure download link", actor=IG,
                                        override_reason="requester alone in frame")
    assert sars.get_sar(vault, sar.id).sar.status == SarStatus.DISCLOSED
    # Disclosed but not closed: still held.
    assert {d.recording_id for d in run_retention(vault, now=T0 + dt.timedelta(days=32)).kept} == {
        inside.id, late.id}

    closed = sars.close_sar(vault, "SAR-2026-14", reason="response sent, no complaint", actor=IG)
    assert closed.status == SarStatus.CLOSED and closed.closed_at == clock.now
    view = sars.get_sar(vault, sar.id)
    assert all(hold.released_at is not None for _, hold in view.windows)
    assert [d.id for d in view.disclosures] == [disclosure.id]
    report = run_retention(vault, now=T0 + dt.timedelta(days=33))
    assert {d.recording_id for d in report.deleted} == {inside.id, late.id}

    # Every step is in the custody log under the SAR reference.
    steps = [e.event.action for e in vault.ledger.events(limit=1000)
             if e.event.reference == "SAR-2026-14"]
    assert steps == ["sar.registered", "held", "sar.window_attached", "sar.disclosed",
                     "released", "sar.closed"]
    disclosed = next(e.event for e in vault.ledger.events(action="sar.disclosed"))
    assert disclosed.hashes == {inside.id: inside.sha256}
    # The requester's name never enters the permanent log (it stays erasable in the SAR row).
    assert disclosed.recipient == "the requester of SAR-2026-14"
    assert "A. Resident" not in str([e.event.to_dict() for e in vault.ledger.events(limit=1000)])
    registered = next(e.event for e in vault.ledger.events(action="sar.registered"))
    assert "a.resident@example.org" not in str(registered.details)
    vault.ledger.verify()


def test_extension_moves_the_deadline_with_a_reason(vault: Vault) -> None:
    sar = sars.register_sar(vault, reference="SAR-1", requester_name="B", received_on=dt.date(2026, 10, 31), actor=IG)
    assert sar.deadline == dt.date(2026, 11, 30)
    with pytest.raises(InvalidInput, match="reason"):
        sars.extend_sar(vault, sar.id, months=1, reason=" ", actor=IG)
    sar = sars.extend_sar(vault, sar.id, months=1, reason="footage from 14 cameras", actor=IG)
    assert sar.status == SarStatus.EXTENDED and sar.deadline == dt.date(2026, 12, 31)
    sar = sars.extend_sar(vault, sar.id, months=1, reason="third parties to redact", actor=IG)
    assert sar.deadline == dt.date(2027, 1, 31) and sar.due_on == dt.date(2026, 11, 30)
    with pytest.raises(InvalidInput, match="at most 2"):
        sars.extend_sar(vault, sar.id, months=1, reason="more", actor=IG)
    event = vault.ledger.events(action="sar.extended")[-1].event
    assert event.details["deadline"] == "2027-01-31" and event.details["reason"] == "third parties to redact"


def test_due_soon_lists_requests_nearing_their_deadline(vault: Vault) -> None:
    a = sars.register_sar(vault, reference="SAR-A", requester_name="A", received_on=dt.date(2026, 10, 5), actor=IG)
    b = sars.register_sar(vault, reference="SAR-B", requester_name="B", received_on=dt.date(2026, 10, 20), actor=IG)
    sars.register_sar(vault, reference="SAR-C", requester_name="C", received_on=dt.date(2026, 11, 2), actor=IG)
    overdue = sars.register_sar(vault, reference="SAR-D", requester_name="D", received_on=dt.date(2026, 9, 1), actor=IG)
    done = sars.register_sar(vault, reference="SAR-E", requester_name="E", received_on=dt.date(2026, 10, 6), actor=IG)
    sars.close_sar(vault, done.id, reason="withdrawn", actor=IG)
    now = T0  # 3 November: A is due 5 November, B 20 November, C 2 December; D was due 1 October
    assert [s.reference for s in sars.due_soon(vault, 7, now)] == ["SAR-D", "SAR-A"]
    assert [s.reference for s in sars.due_soon(vault, 20, now)] == ["SAR-D", "SAR-A", "SAR-B"]
    sars.extend_sar(vault, a.id, months=1, reason="complex", actor=IG)
    assert [s.id for s in sars.due_soon(vault, 7, now)] == [overdue.id]
    assert b.id in {s.id for s in sars.list_sars(vault)}


def test_refusals_and_bad_input(vault: Vault) -> None:
    with pytest.raises(InvalidInput, match="future"):
        sars.register_sar(vault, reference="X", requester_name="A", received_on=dt.date(2026, 12, 1), actor=IG)
    sar = sars.register_sar(vault, reference="SAR-9", requester_name="A", received_on=T0.date(), actor=IG)
    with pytest.raises(InvalidInput, match="already exists"):
        sars.register_sar(vault, reference="SAR-9", requester_name="A", received_on=T0.date(), actor=IG)
    with pytest.raises(NotFound, match="cam-99"):
        sars.attach_window(vault, sar.id, source_id="cam-99", start=T0 - dt.timedelta(hours=1), end=T0, actor=IG)
    _footage(vault, "cam-3", T0 - dt.timedelta(hours=1))
    with pytest.raises(InvalidInput, match="end after"):
        sars.attach_window(vault, sar.id, source_id="cam-3", start=T0, end=T0, actor=IG)
    with pytest.raises(NotFound):
        sars.get_sar(vault, "SAR-nope")
    sars.close_sar(vault, sar.id, reason="manifestly unfounded", actor=IG, refused=True)
    assert sars.get_sar(vault, "SAR-9").sar.status == SarStatus.REFUSED
    with pytest.raises(InvalidInput, match="refused"):
        sars.attach_window(vault, sar.id, source_id="cam-3", start=T0 - dt.timedelta(hours=1), end=T0, actor=IG)
