"""Issue #11 findings 1, 2, 3 and 20, each as it was reproduced, over HTTP.

The class behind 1-3 (a boundary that holds on one path and not on another) is checked by
tests/api/test_boundary_model.py on generated worlds; these are the reported instances.
"""

from __future__ import annotations

import datetime as dt

from api.jobs import open_job_queue
from tests.api.conftest import OPERATOR, ORG, T0, World
from vault.access import identity
from vault.casework import sites
from vault.actors import Purpose, Role
from vault.storage.catalog import HoldKind
from vault.casework.holds import place_hold
from vault.access.identity import principal_for
from vault.casework.jobs import JobKind, get_job
from vault.casework.retention import run_retention
from vault.casework.sar import attach_window, register_sar

PARTNER = "Partner Council"


def _partner(world: World, name: str, role: Role) -> dict[str, str]:
    identity.create_user(world.vault, name=name, role=role, organisation=PARTNER,
                         sites=[], actor=OPERATOR)
    token = identity.issue_token(world.vault, name, actor=OPERATOR).token
    return {"Authorization": f"Bearer {token}", "X-Purpose": "probe"}


def _owned_sites(world: World) -> None:
    # Two organisations share this vault: each site's footage has an owner (docs/organisations.md).
    for site in ("Elm Court", "Riverside", "Oak Park"):
        sites.register_site(world.vault, site, organisation=ORG, actor=OPERATOR)


def test_finding_1_a_package_of_two_sites_is_not_visible_from_one(world: World) -> None:
    """Finding 1: a disclosure package was filed under its first item's source, so an ASB
    officer scoped to that site found it and downloaded the other site's footage inside."""
    queue = open_job_queue(world.vault.settings, immediate=True, vault=world.vault)
    ids = [world.rec["rec_site"].id, world.rec["rec_other"].id]  # Riverside first, Oak Park
    job = queue.submit(
        JobKind.EXPORT, actor=principal_for(world.vault, "ig").actor,
        purpose=Purpose("prosecution file", "DPA 2018 s.35"),
        params={"recording_ids": ids, "recipient": "DC Smith", "recipient_org": "Met Police"},
    )
    package_id = get_job(world.vault, job.id).result["package_recording_id"]
    assert world.vault.recording(package_id).source_id == "cam-river-2"  # filed at Riverside
    assert world.vault.origins(package_id) == sorted(ids)

    asb = world.headers("asb")  # assigned Riverside only
    listed = world.client.get("/recordings", params={"limit": 1000}, headers=asb).json()["items"]
    assert package_id not in {r["id"] for r in listed}
    assert world.rec["rec_site"].id in {r["id"] for r in listed}
    for path in ("", "/download", "/stream"):
        got = world.client.get(f"/recordings/{package_id}{path}", headers=asb)
        assert got.status_code == 403, (path, got.text)
    # The IG officer, who may see both sites, sees it.
    ig = world.client.get(f"/recordings/{package_id}", headers=world.headers("ig"))
    assert ig.status_code == 200


def test_finding_2_holds_stay_in_their_organisation(world: World) -> None:
    """Finding 2: GET /holds listed every organisation's holds, and a police liaison of another
    organisation released a case hold and a SAR window hold, after which retention deleted
    the footage."""
    _owned_sites(world)
    police = _partner(world, "pc.partner", Role.POLICE_LIAISON)
    ig_actor = principal_for(world.vault, "ig").actor
    case_hold = place_hold(world.vault, kind=HoldKind.CASE, reason="case evidence",
                           case_id=world.case_id, actor=ig_actor, organisation=ig_actor.organisation)
    sar = register_sar(world.vault, reference="SAR-1", requester_name="A. Resident",
                       received_on=T0.date(), actor=ig_actor)
    window = attach_window(world.vault, sar.id, source_id="cam-oak-3",
                           start=T0 - dt.timedelta(hours=3), end=T0, actor=ig_actor)

    assert world.client.get("/holds", params={"all": "true"}, headers=police).json() == []
    for hold_id in (case_hold.id, window.hold_id):
        refused = world.client.post(f"/holds/{hold_id}/release", json={"reason": "x"},
                                    headers=police)
        assert refused.status_code == 403, refused.text
    # Even its own organisation's administrator cannot end a SAR's hold except by closing it.
    admin = world.headers("admin", purpose=False)
    refused = world.client.post(f"/holds/{window.hold_id}/release", json={"reason": "tidy"},
                                headers=admin)
    assert refused.status_code == 403 and "closed" in refused.json()["detail"]
    # A release states why.
    blank = world.client.post(f"/holds/{case_hold.id}/release", json={"reason": " "}, headers=admin)
    assert blank.status_code == 400
    report = run_retention(world.vault, now=T0 + dt.timedelta(days=60), dry_run=True)
    assert world.rec["rec_other"].id in {d.recording_id for d in report.kept}


def test_finding_3_sars_and_case_history_stay_in_their_organisation(world: World) -> None:
    """Finding 3: another organisation's IG officer listed SARs (requester's name and contact)
    and read a case's custody events."""
    _owned_sites(world)
    partner_ig = _partner(world, "ig.partner", Role.IG_OFFICER)
    sar = register_sar(world.vault, reference="SAR-2", requester_name="B. Resident",
                       requester_contact="b@example.org", received_on=T0.date(),
                       actor=principal_for(world.vault, "ig").actor)
    assert world.client.get("/sars", headers=partner_ig).json() == []
    assert world.client.get(f"/sars/{sar.id}", headers=partner_ig).status_code == 403
    history = world.client.get("/custody/events", params={"case_id": world.case_id},
                               headers=partner_ig)
    assert history.status_code == 403
    events = world.client.get("/custody/events", params={"limit": 1000},
                              headers=partner_ig).json()["items"]
    leaked = [e["event"] for e in events if e["event"]["actor"] != "ig.partner" and (
        world.case_id in e["event"]["object_ids"] or sar.id in e["event"]["object_ids"])]
    assert not leaked, leaked
    # Its own organisation's IG officer reads both.
    ig = world.headers("ig", purpose=False)
    assert world.client.get(f"/sars/{sar.id}", headers=ig).status_code == 200
    assert world.client.get("/custody/events", params={"case_id": world.case_id},
                            headers=ig).json()["items"]


def test_finding_20_evidence_on_an_open_case_is_kept_and_shown_as_kept(world: World) -> None:
    """Finding 20: adding footage to a case did not keep it (a separate POST /holds was
    needed), and `ls` / `retain_until` still showed the 23-day date for held footage."""
    asb = world.headers("asb")
    rec = world.rec["rec_site"]
    before = world.client.get(f"/recordings/{rec.id}", headers=asb).json()
    assert before["held"] is False and before["kept_until"] == before["retain_until"]
    linked = world.client.post(f"/cases/{world.case_id}/recordings",
                               json={"recording_id": rec.id}, headers=asb)
    assert linked.status_code == 200, linked.text
    after = world.client.get(f"/recordings/{rec.id}", headers=asb).json()
    assert after["held"] is True and after["kept_until"] is None
    report = run_retention(world.vault, now=T0 + dt.timedelta(days=60))
    assert rec.id in {d.recording_id for d in report.kept}
    assert "case hold (ASB/1)" in next(d.reason for d in report.kept if d.recording_id == rec.id)
    # A closed case keeps nothing; a case is closed with a reason, by those who manage it.
    assert world.client.post(f"/cases/{world.case_id}/close", json={"reason": " "},
                             headers=asb).status_code == 400
    closed = world.client.post(f"/cases/{world.case_id}/close",
                               json={"reason": "no further action"}, headers=asb)
    assert closed.status_code == 200 and closed.json()["status"] == "closed"
    shown = world.client.get(f"/recordings/{rec.id}", headers=world.headers("ig")).json()
    assert shown["held"] is False and shown["kept_until"] == shown["retain_until"]
    report = run_retention(world.vault, now=T0 + dt.timedelta(days=61))
    assert rec.id in {d.recording_id for d in report.deleted}
