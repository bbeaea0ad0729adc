"""Times typed without a UTC offset are read as UK local time (issue #11 finding 26), through
the one parser (vault/localtime.py) on every entry: API query parameters, API bodies, the CLI;
the zone used is stated, storage and the ledger keep UTC, and the two clock-change hours get
a clear error or the stated window rule."""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

import pytest
from typer.testing import CliRunner

from api._localtime import HEADER
from api.cli import app as cli_app
from tests.api.conftest import World
from vault.errors import InvalidInput
from vault.localtime import parse_instant, uk_wall_time

UTC = dt.UTC


@pytest.mark.parametrize(("text", "utc", "assumed"), [
    ("2026-11-25T14:32", dt.datetime(2026, 11, 25, 14, 32, tzinfo=UTC), "Europe/London (GMT, +00:00)"),
    ("2026-07-01T09:00:00", dt.datetime(2026, 7, 1, 8, 0, tzinfo=UTC), "Europe/London (BST, +01:00)"),
    ("2026-07-01", dt.datetime(2026, 6, 30, 23, 0, tzinfo=UTC), "Europe/London (BST, +01:00)"),
    ("2026-07-01T09:00:00Z", dt.datetime(2026, 7, 1, 9, 0, tzinfo=UTC), None),
    ("2026-07-01T09:00:00+02:00", dt.datetime(2026, 7, 1, 7, 0, tzinfo=UTC), None),
    # The hour before and after each change exists once.
    ("2026-03-29T00:59", dt.datetime(2026, 3, 29, 0, 59, tzinfo=UTC), "Europe/London (GMT, +00:00)"),
    ("2026-03-29T02:00", dt.datetime(2026, 3, 29, 1, 0, tzinfo=UTC), "Europe/London (BST, +01:00)"),
    ("2026-10-25T00:59", dt.datetime(2026, 10, 24, 23, 59, tzinfo=UTC), "Europe/London (BST, +01:00)"),
    ("2026-10-25T02:00", dt.datetime(2026, 10, 25, 2, 0, tzinfo=UTC), "Europe/London (GMT, +00:00)"),
])
def test_parse_instant(text: str, utc: dt.datetime, assumed: str | None) -> None:
    """Issue #11 finding 26: an offset is honoured; without one, UK time (GMT or BST)."""
    parsed = parse_instant(text, field="since")
    assert parsed.utc == utc and parsed.utc.tzinfo == UTC
    assert parsed.assumed == assumed


def test_clock_change_hours_have_a_stated_rule() -> None:
    """Issue #11 finding 26: the skipped spring hour is refused; the repeated autumn hour is
    refused naming both offsets, unless the caller says it is a window's start (earlier, BST)
    or end (later, GMT)."""
    with pytest.raises(InvalidInput, match="does not exist in UK time"):
        parse_instant("2026-03-29T01:30", field="--since")
    with pytest.raises(InvalidInput, match=r"happens twice.*\+01:00 for the first \(BST\).*\+00:00"):
        parse_instant("2026-10-25T01:30", field="--since")
    naive = dt.datetime(2026, 10, 25, 1, 30)
    assert uk_wall_time(naive, field="start", edge="start") == dt.datetime(2026, 10, 25, 0, 30, tzinfo=UTC)
    assert uk_wall_time(naive, field="end", edge="end") == dt.datetime(2026, 10, 25, 1, 30, tzinfo=UTC)
    with pytest.raises(InvalidInput, match="not an ISO-8601 time"):
        parse_instant("25/11/2026 14:32", field="--since")


def test_api_query_reads_uk_time_and_says_so(world: World) -> None:
    """Issue #11 finding 26: ``GET /recordings?since=...`` without an offset was refused (422).
    It is now UK local time, and ``X-Assumed-Time-Zone`` says how it was read; with an offset
    the header is absent."""
    h = world.headers("admin")
    start = world.rec["rec_site"].captured_start  # 2026-11-25T13:00Z: GMT, so UK == UTC
    local = start.strftime("%Y-%m-%dT%H:%M:%S")
    got = world.client.get("/recordings", params={"since": local}, headers=h)
    assert got.status_code == 200, got.text
    assert world.rec["rec_site"].id in {r["id"] for r in got.json()["items"]}
    assert got.headers[HEADER] == f"{local} read as Europe/London (GMT, +00:00) = {local}Z"
    explicit = world.client.get("/recordings", params={"since": local + "Z"}, headers=h)
    assert explicit.status_code == 200 and HEADER not in explicit.headers
    searched = world.vault.ledger.events(action="searched", limit=100_000)[-1].event
    assert start.isoformat()[:19] in json.dumps(searched.details)  # the ledger keeps UTC


def test_api_body_reads_bst_and_keeps_utc(world: World) -> None:
    """Issue #11 finding 26: in a JSON body (a share's expiry) a summer time without offset is
    BST: stored and answered in UTC, an hour earlier, and the response says which zone."""
    body = {
        "recipient": "DC 4711 Patel", "recipient_org": "Metropolitan Police",
        "purpose": "investigation", "lawful_basis": "DPA 2018 s.35",
        "recording_ids": [world.rec["rec_site"].id], "expires_at": "2027-06-01T12:00:00",
    }
    # The clock is 2026-11-25: keep the expiry within the 366 days a share may last.
    created = world.client.post("/shares", json=body, headers=world.headers("admin", purpose=False))
    assert created.status_code == 201, created.text
    assert dt.datetime.fromisoformat(created.json()["share"]["expires_at"]) == dt.datetime(
        2027, 6, 1, 11, 0, tzinfo=UTC)
    assert "expires_at 2027-06-01T12:00:00 read as Europe/London (BST, +01:00)" in created.headers[HEADER]
    shared = world.vault.ledger.events(action="shared", limit=100_000)[-1].event
    assert shared.details["expires_at"].startswith("2027-06-01T11:00:00")


def test_cli_reads_uk_time_and_says_so(tmp_path: Path) -> None:
    """Issue #11 finding 26: ``put --captured-at 2026-07-01T09:00`` was refused; it is now UK
    time, the note on stderr names the zone, and the catalog keeps UTC."""
    runner = CliRunner()
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home")}
    assert runner.invoke(cli_app, ["init"], env=env).exit_code == 0
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(1000))
    put = runner.invoke(cli_app, ["put", str(clip), "--source", "cam-1", "--captured-at",
                                  "2026-07-01T09:00", "--json"], env=env)
    assert put.exit_code == 0, put.output
    assert "--captured-at 2026-07-01T09:00:00 read as Europe/London (BST, +01:00)" in put.stderr
    assert json.loads(put.stdout)["captured_start"].startswith("2026-07-01T08:00:00")
    skipped = runner.invoke(cli_app, ["ls", "--since", "2026-03-29T01:15"], env=env)
    assert skipped.exit_code == 8 and "does not exist in UK time" in skipped.stderr


def test_cli_window_covers_both_repeated_hours(tmp_path: Path) -> None:
    """Issue #11 finding 26: a SAR window typed in the hour the clocks repeat (25 October
    01:00-01:59 happens twice) starts at the first and ends at the second, so it covers both;
    the output gives UTC."""
    runner = CliRunner()
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home")}
    assert runner.invoke(cli_app, ["init"], env=env).exit_code == 0
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(os.urandom(1000))
    put = runner.invoke(cli_app, ["put", str(clip), "--source", "cam-1", "--captured-at",
                                  "2026-10-25T00:40Z"], env=env)
    assert put.exit_code == 0, put.output
    reg = runner.invoke(cli_app, ["sar", "register", "SAR-UK-1", "--requester", "A. Person",
                                  "--received", "2026-10-26"], env=env)
    assert reg.exit_code == 0, reg.output
    attached = runner.invoke(cli_app, ["sar", "attach", "SAR-UK-1", "--source", "cam-1",
                                       "--start", "2026-10-25T01:30", "--end", "2026-10-25T01:45"],
                             env=env)
    assert attached.exit_code == 0, attached.output
    assert "held cam-1 2026-10-25T00:30:00+00:00 to 2026-10-25T01:45:00+00:00" in attached.stdout
    assert "read as Europe/London (BST, +01:00)" in attached.stderr
    assert "read as Europe/London (GMT, +00:00)" in attached.stderr
