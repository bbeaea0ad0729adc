"""The evidence-vault command line, driven as a user would (in-process via CliRunner)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import socket
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from typer.testing import CliRunner

from api.cli import app
from tests.vault.ledger_sql import edit_entries, stored_entry


@pytest.fixture
def cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    runner = CliRunner()
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home"), "EVIDENCE_VAULT_CHECKPOINT_EVERY": "4"}

    def run(*args: str, extra_env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args), env={**env, **(extra_env or {})})

    result = run("init", "--json")
    assert result.exit_code == 0, result.output
    return run


def _put(cli, path: Path) -> str:  # type: ignore[no-untyped-def]
    result = cli("put", str(path), "--source", "cam-03", "--captured-at", "2026-11-25T14:32:00Z", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def test_put_get_ls_round_trip(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = tmp_path / "clip.mp4"
    data = os.urandom(3_000_000)
    clip.write_bytes(data)
    rid = _put(cli, clip)

    listed = json.loads(cli("ls", "--json").stdout)
    assert [r["id"] for r in listed] == [rid]
    assert listed[0]["sha256"] == hashlib.sha256(data).hexdigest()
    assert listed[0]["captured_start"].startswith("2026-11-25T14:32:00")
    assert listed[0]["media_kind"] == "video"

    out = tmp_path / "out.mp4"
    result = cli("get", rid, "-o", str(out))
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == data

    part = tmp_path / "part.bin"
    assert cli("get", rid, "-o", str(part), "--range", "1000-1999").exit_code == 0
    assert part.read_bytes() == data[1000:2000]


def test_custody_log_verify_and_proof(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF" + os.urandom(5000))
    rid = _put(cli, clip)
    cli("get", rid, "-o", str(tmp_path / "x"))

    events = json.loads(cli("custody", "log", rid, "--json").stdout)
    assert len(events) == 2
    verify = cli("custody", "verify", "--json")
    assert verify.exit_code == 0, verify.output
    proof = cli("custody", "proof", "0")
    assert proof.exit_code == 0, proof.output
    assert json.loads(proof.stdout)


def test_custody_rotate_key(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = tmp_path / "a.wav"
    clip.write_bytes(b"RIFF" + os.urandom(5000))
    rid = _put(cli, clip)
    init = json.loads(cli("init", "--json").stdout)

    result = cli("custody", "rotate-key", "--reason", "annual rotation", "--json")
    assert result.exit_code == 0, result.output
    handover = json.loads(result.stdout)
    assert handover["old_key"] == init["ledger_verifier_key"] != handover["new_key"]
    # The next command, a new process, signs with the new key; footage still reads.
    assert cli("get", rid, "-o", str(tmp_path / "x")).exit_code == 0
    assert json.loads(cli("init", "--json").stdout)["ledger_verifier_key"] == handover["new_key"]
    verify = cli("custody", "verify", "--json")
    assert verify.exit_code == 0, verify.output
    actions = [e["event"]["action"] for e in json.loads(cli("custody", "log", "--json").stdout)]
    assert "key_rotated" in actions
    assert cli("custody", "rotate-key", "--help").exit_code == 0


def test_keys_list_rotate_rewrap(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = tmp_path / "a.wav"
    data = b"RIFF" + os.urandom(5000)
    clip.write_bytes(data)
    rid = _put(cli, clip)
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert [(k["state"], k["recordings"]) for k in listed] == [("active", 1)]

    result = cli("keys", "rotate", "--reason", "annual rotation", "--json")
    assert result.exit_code == 0, result.output
    rotated = json.loads(result.stdout)
    assert rotated["old_key_id"] == listed[0]["key_id"] != rotated["new_key_id"]
    assert rotated["rewrap"]["rewrapped"] == 1
    listed = json.loads(cli("keys", "list", "--json").stdout)
    assert [(k["state"], k["recordings"]) for k in listed] == [("retired", 0), ("active", 1)]
    assert json.loads(cli("keys", "rewrap", "--json").stdout)["rewrapped"] == 0
    out = tmp_path / "back.wav"
    assert cli("get", rid, "-o", str(out)).exit_code == 0
    assert out.read_bytes() == data
    refused = cli("keys", "rotate", "--reason", " ")
    assert refused.exit_code != 0 and "reason" in refused.output
    # Destroying the old key waits an hour after its retirement.
    early = cli("keys", "destroy", rotated["old_key_id"], "--reason", "monthly")
    assert early.exit_code == 8 and "wait until" in early.output


def test_fixity_check(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ids = []
    for i in range(2):
        clip = tmp_path / f"{i}.wav"
        clip.write_bytes(b"RIFF" + os.urandom(5000))
        ids.append(_put(cli, clip))
    result = cli("fixity", "check", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["ok"] == 2
    # Rot one stored object: the check names it and exits 4 (an integrity failure).
    objects = sorted((tmp_path / "home" / "objects").rglob(f"{ids[1]}*"))
    stored = objects[0]
    data = stored.read_bytes()
    stored.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    result = cli("fixity", "check")
    assert result.exit_code == 4
    assert f"corrupt: {ids[1]}" in result.output and "1 of 2 recordings intact" in result.output
    assert cli("fixity", "check", ids[0]).exit_code == 0


def test_retention_worker_round_with_a_fixity_spot_check(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from api.cli.retention import one_round
    from vault.config import Settings
    from vault.vault import Vault

    for i in range(3):
        clip = tmp_path / f"{i}.wav"
        clip.write_bytes(b"RIFF" + os.urandom(5000))
        _put(cli, clip)
    with Vault.open(Settings(home=tmp_path / "home")) as vault:
        one_round(vault, fixity_sample=2, rotate_keys_every=dt.timedelta(0))
        (event,) = vault.ledger.events(action="fixity_checked")
        assert len(vault.ledger.events(action="key_rotated")) == 1
    assert len(event.object_ids) == 2
    out = capsys.readouterr().out
    assert "fixity spot check: 2 of 2 recordings intact" in out
    assert "3 data keys rewrapped" in out


def test_retention_worker_round_verifies_custody_appended_since_the_last_check(  # type: ignore[no-untyped-def]
        cli, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue #15 build 1, the scheduled check: each retention round verifies the custody events
    appended since the last verified checkpoint; an entry altered after that mark makes the
    round report the failure (and the worker then leaves its health heartbeat stale)."""

    from api.cli.retention import one_round
    from vault.config import Settings
    from vault.vault import Vault

    clip = tmp_path / "0.wav"
    clip.write_bytes(b"RIFF" + os.urandom(5000))
    _put(cli, clip)
    with Vault.open(Settings(home=tmp_path / "home")) as vault:
        assert one_round(vault, verify_custody=True) is True
        assert "custody ledger: " in capsys.readouterr().out
        second = tmp_path / "1.wav"
        second.write_bytes(b"RIFF" + os.urandom(5000))
        _put(cli, second)
        last = vault.ledger.size() - 1
        changed = edit_entries(vault.engine, lambda e: e.replace("1.wav", "2.wav"),
                               where=f"seq = {last}")
        payload = stored_entry(vault.engine, last)
        assert changed == 1 and "2.wav" in payload, payload
        assert one_round(vault, verify_custody=True) is False
    assert "custody ledger check FAILED" in capsys.readouterr().err


def test_custody_verify_names_the_edited_event(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for i in range(3):
        f = tmp_path / f"f{i}.mp4"
        f.write_bytes(os.urandom(100 + i))
        _put(cli, f)
    engine = create_engine(f"sqlite:///{tmp_path / 'home' / 'catalog.sqlite3'}")
    assert edit_entries(engine, lambda e: e.replace("cam-03", "cam-04"), where="seq = 1") == 1
    engine.dispose()
    result = cli("custody", "verify")
    assert result.exit_code == 4, result.output
    assert "1" in result.stderr


def test_unknown_id_is_one_line_and_exit_3(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("get", "no-such-id", "-o", str(tmp_path / "o"))
    assert result.exit_code == 3
    assert result.stderr.strip().count("\n") == 0
    assert "no recording with id no-such-id" in result.stderr
    assert not (tmp_path / "o").exists()


def test_missing_file_is_exit_3(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = cli("put", str(tmp_path / "missing.mp4"), "--source", "cam-1")
    assert result.exit_code == 3
    assert "no such file" in result.stderr


def test_wrong_key_file_is_exit_6(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = tmp_path / "c.mp4"
    clip.write_bytes(b"x" * 100)
    rid = _put(cli, clip)
    other_home = tmp_path / "other"
    assert cli("init", extra_env={"EVIDENCE_VAULT_HOME": str(other_home)}).exit_code == 0
    keyring = tmp_path / "home" / "keyring.json"
    keyring.chmod(0o600)
    keyring.write_bytes((other_home / "keyring.json").read_bytes())
    result = cli("get", rid, "-o", str(tmp_path / "o"))
    assert result.exit_code == 6, result.output
    assert not (tmp_path / "o").exists()


def test_corrupt_object_is_exit_4_and_no_output(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = tmp_path / "c.mp4"
    clip.write_bytes(os.urandom(200_000))
    rid = _put(cli, clip)
    obj = next((tmp_path / "home" / "objects").rglob(rid))
    raw = bytearray(obj.read_bytes())
    raw[-100] ^= 0xFF
    obj.chmod(0o600)
    obj.write_bytes(bytes(raw))
    result = cli("get", rid, "-o", str(tmp_path / "o"))
    assert result.exit_code == 4, result.output
    assert not (tmp_path / "o").exists()


def test_unreachable_s3_is_exit_5(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once the block ends: nothing listens there
    clip = tmp_path / "c.mp4"
    clip.write_bytes(b"x")
    result = cli(
        "put", str(clip), "--source", "cam-1",
        extra_env={
            "EVIDENCE_VAULT_STORE_BACKEND": "s3",
            "EVIDENCE_VAULT_S3_ENDPOINT": f"127.0.0.1:{port}",
            "EVIDENCE_VAULT_S3_ACCESS_KEY": "k",
            "EVIDENCE_VAULT_S3_SECRET_KEY": "secretsecret",
        },
    )
    assert result.exit_code == 5, result.output
    assert f"127.0.0.1:{port}" in result.stderr


def test_every_command_has_help() -> None:
    runner = CliRunner()
    for args in (["--help"], ["init", "--help"], ["put", "--help"], ["get", "--help"], ["ls", "--help"],
                 ["custody", "log", "--help"], ["custody", "verify", "--help"], ["custody", "proof", "--help"]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (args, result.output)
        assert "Usage" in result.output


def test_retention_run_and_certificate(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = tmp_path / "c.mp4"
    clip.write_bytes(os.urandom(1000))
    rid = _put(cli, clip)  # captured 2026-11-25T14:32Z
    # The drill flag: 2026-12-18 may be ahead of the machine's clock (finding 23's guard).
    kept = json.loads(cli("retention", "run", "--now", "2026-12-18T14:31:00Z", "--drill-on-a-copy",
                          "--json").stdout)
    assert kept["deleted"] == []
    dry = json.loads(cli("retention", "run", "--now", "2026-12-18T14:32:00Z", "--dry-run", "--json").stdout)
    assert [d["outcome"] for d in dry["deleted"]] == ["would_delete"]
    assert cli("retention", "certificate", rid).exit_code == 3  # not deleted yet
    done = cli("retention", "run", "--now", "2026-12-18T14:32:00Z", "--drill-on-a-copy")
    assert done.exit_code == 0, done.output
    assert f"deleted {rid}" in done.stdout
    cert = json.loads(cli("retention", "certificate", rid).stdout)
    assert cert["certificate"]["recording_id"] == rid
    result = cli("get", rid, "-o", str(tmp_path / "gone"))
    assert result.exit_code == 6 and "deleted on 2026-12-18" in result.stderr
    assert cli("custody", "verify").exit_code == 0


def test_retention_worker_rejects_bad_interval(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("retention", "worker", "--every", "soon")
    assert result.exit_code == 8
    assert "bad interval" in result.stderr


def test_export_create_and_verify(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    clip = tmp_path / "c.mp4"
    clip.write_bytes(os.urandom(5000))
    rid = _put(cli, clip)
    pkg = tmp_path / "pkg.zip"
    result = cli("export", "create", rid, "-o", str(pkg), "--recipient", "DC Shaw",
                 "--recipient-org", "West Yorkshire Police", "--purpose", "prosecution", "--json")
    assert result.exit_code == 0, result.output
    vkey = json.loads(result.stdout)["verifier_key"]
    ok = cli("export", "verify", str(pkg), "--key", vkey)
    assert ok.exit_code == 0 and ok.stdout.startswith("OK:"), ok.output
    pkg.write_bytes(pkg.read_bytes()[:-200])  # truncated in transit
    bad = cli("export", "verify", str(pkg), "--key", vkey)
    assert bad.exit_code == 4


def test_retention_refuses_a_future_clock_unless_a_drill(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue #11 finding 23: ``retention run --now <future>`` without ``--dry-run`` deleted
    footage early. A clock ahead of the real one is refused, naming --dry-run and
    --drill-on-a-copy, and nothing is deleted; a dry run and an explicit drill still work."""
    clip = tmp_path / "young.mp4"
    data = os.urandom(1000)
    clip.write_bytes(data)
    captured = dt.datetime.now(dt.UTC) - dt.timedelta(days=2)
    put = cli("put", str(clip), "--source", "cam-03", "--captured-at",
              captured.strftime("%Y-%m-%dT%H:%M:%SZ"), "--json")
    assert put.exit_code == 0, put.output
    rid = json.loads(put.stdout)["id"]
    future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")

    refused = cli("retention", "run", "--now", future)
    assert refused.exit_code == 8, refused.output
    assert "ahead of the clock" in refused.stderr and "would delete footage early" in refused.stderr
    assert "--dry-run" in refused.stderr and "--drill-on-a-copy" in refused.stderr
    assert "Traceback" not in refused.output
    out = tmp_path / "still.mp4"
    assert cli("get", rid, "-o", str(out)).exit_code == 0 and out.read_bytes() == data

    dry = cli("retention", "run", "--now", future, "--dry-run", "--json")
    assert dry.exit_code == 0 and [d["recording_id"] for d in json.loads(dry.stdout)["deleted"]] == [rid]
    assert cli("get", rid, "-o", str(out)).exit_code == 0

    drill = cli("retention", "run", "--now", future, "--drill-on-a-copy", "--json")
    assert drill.exit_code == 0, drill.output
    assert [d["recording_id"] for d in json.loads(drill.stdout)["deleted"]] == [rid]


def test_ls_says_when_more_match_than_it_shows(cli, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Issue #15: `ls` stopped at 1,000 rows without a word; a cut list looked like all there is."""
    ids = []
    for n in range(3):
        clip = tmp_path / f"c{n}.bin"
        clip.write_bytes(os.urandom(1000))
        result = cli("put", str(clip), "--source", "cam-03", "--captured-at",
                     f"2026-11-25T14:3{n}:00Z", "--json")
        ids.append(json.loads(result.stdout)["id"])
    first = cli("ls", "--limit", "2", "--json")
    assert [r["id"] for r in json.loads(first.stdout)] == ids[:2]
    assert "more match: use --offset 2" in first.stderr
    rest = cli("ls", "--limit", "2", "--offset", "2", "--json")
    assert [r["id"] for r in json.loads(rest.stdout)] == ids[2:]
    assert "more match" not in rest.stderr
    assert cli("ls", "--limit", "0").exit_code != 0
