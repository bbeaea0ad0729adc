"""Custody routes: query, verify, prove one event offline, fetch the signed checkpoint."""

from __future__ import annotations

import pytest

from tests.api.conftest import World
from vault.ledger.custody import CustodyLedger
from vault.errors import LedgerError


def test_verify_passes(world: World) -> None:
    world.client.get(f"/recordings/{world.rec['rec_case'].id}/stream", headers=world.headers("admin"))
    response = world.client.get("/custody/verify", headers=world.headers("auditor"))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["ok"] is True and body["events"] == world.vault.ledger.size()


def test_inclusion_proof_verifies_offline(world: World) -> None:
    world.client.get(f"/recordings/{world.rec['rec_case'].id}/download", headers=world.headers("asb"))
    seq = world.vault.ledger.events(action="downloaded")[-1].seq
    proof = world.client.get(f"/custody/events/{seq}/proof", headers=world.headers("auditor"))
    assert proof.status_code == 200, proof.text
    checkpoint = world.client.get("/custody/checkpoint", headers=world.headers("auditor")).json()
    vkey = checkpoint["verifier_key"]
    assert vkey == world.vault.ledger.verifier_key()
    CustodyLedger.verify_inclusion_proof(proof.json(), vkey, origin=checkpoint["origin"])
    assert '"action":"downloaded"' in proof.json()["entry"]

    tampered = {**proof.json(), "entry": proof.json()["entry"].replace("downloaded", "viewed")}
    with pytest.raises(LedgerError):
        CustodyLedger.verify_inclusion_proof(tampered, vkey)


def test_checkpoint_covers_every_event(world: World) -> None:
    body = world.client.get("/custody/checkpoint", headers=world.headers("ig")).json()
    assert body["size"] == world.vault.ledger.size()
    assert body["checkpoint"].startswith(body["origin"] + "\n")
    assert body["key_handovers"] == []


def test_checkpoint_lists_key_handovers_after_a_rotation(world: World) -> None:
    old = world.vault.ledger.verifier_key()
    new = world.vault.ledger.rotate_key(actor="admin", reason="annual rotation")["new_key"]
    body = world.client.get("/custody/checkpoint", headers=world.headers("ig")).json()
    assert body["verifier_key"] == new
    (handover,) = body["key_handovers"]
    assert (handover["old_key"], handover["new_key"]) == (old, new)
    # The hand-over verifies offline with the old key alone.
    CustodyLedger.verify_inclusion_proof(handover["proof"], old)


def test_query_by_item_user_action_and_case(world: World) -> None:
    rid = world.rec["rec_case"].id
    world.client.get(f"/recordings/{rid}/stream", headers=world.headers("asb", Range="bytes=0-9"))
    h = world.headers("auditor")
    by_item = world.client.get("/custody/events", params={"item": rid}, headers=h).json()["items"]
    assert [e["event"]["action"] for e in by_item] == ["ingested", "case_linked", "streamed"]
    by_user = world.client.get(
        "/custody/events", params={"user": "asb", "action": "streamed"}, headers=h
    ).json()["items"]
    assert len(by_user) == 1 and by_user[0]["event"]["details"]["range"] == [0, 9]
    by_case = world.client.get(
        "/custody/events", params={"case_id": world.case_id}, headers=h
    ).json()["items"]
    actions = [e["event"]["action"] for e in by_case]
    assert actions[:2] == ["ingested", "case_created"] and "streamed" in actions
    seqs = [e["seq"] for e in by_case]
    assert seqs == sorted(seqs)
    one = world.client.get(f"/custody/events/{seqs[0]}", headers=h).json()
    assert one["seq"] == seqs[0]


def test_bad_queries(world: World) -> None:
    h = world.headers("auditor")
    assert world.client.get("/custody/events", params={"action": "nope"}, headers=h).status_code == 400
    assert world.client.get("/custody/events/999999", headers=h).status_code == 404
    assert world.client.get("/custody/events/999999/proof", headers=h).status_code == 404
    twice = world.client.get("/custody/events", params={"since": "2026-10-25T01:30:00"}, headers=h)
    assert twice.status_code == 422 and "happens twice in UK time" in twice.text  # finding 26


def test_fixity_check_by_api(world: World) -> None:
    rid = world.rec["rec_case"].id
    h = world.headers("auditor")
    body = world.client.post("/custody/fixity", json={"recording_ids": [rid]}, headers=h).json()
    assert (body["checked"], body["ok"], body["passed"]) == (1, 1, True)
    sample = world.client.post("/custody/fixity", json={"sample": 2}, headers=h).json()
    assert sample["checked"] == 2
    assert world.client.post("/custody/fixity", json={}, headers=h).status_code == 400
    import uuid

    unknown = {"recording_ids": [str(uuid.uuid4())]}
    assert world.client.post("/custody/fixity", json=unknown, headers=h).status_code == 404
    assert world.client.post("/custody/fixity", json={"sample": 0}, headers=h).status_code == 422
    (event, *_) = world.vault.ledger.events(action="fixity_checked")
    assert event.event.actor == "auditor" and event.object_ids == (rid,)
