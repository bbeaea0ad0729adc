"""Jobs where parts meet (issue #11 finding 22): a render is bound to the plan it was queued
with; every route's required headers are in the OpenAPI description; ``/readyz`` shows a queue
nobody is draining."""

from __future__ import annotations

import ast
import datetime as dt
import inspect
import io
import textwrap
from typing import Any

import pytest
from sqlalchemy import update

from api._openapi import api_routes, required_headers
from api.deps import get_optional_purpose
from api.jobs import open_job_queue
from tests.api.conftest import OPERATOR, T0, World
from tests.redaction.conftest import two_people
from redaction.synthetic import make_clip
from vault.storage.catalog import MediaKind, Recording, SourceKind
from vault.capture import Capture
from vault.casework.jobs import Job, JobState, WorkerHeartbeat, get_job


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    clip = make_clip(tmp_path_factory.mktemp("clips") / "people.mp4", two_people(1.0), seconds=1.0)
    return clip.path.read_bytes()


def _store_clip(w: World, data: bytes) -> Recording:
    return w.vault.put_stream(
        io.BytesIO(data),
        Capture(
            source_id="cam-river-9",
            source_kind=SourceKind.CCTV,
            site="Riverside",
            captured_at=T0 - dt.timedelta(hours=1),
            media_kind=MediaKind.VIDEO,
            original_name="cam-river-9.mp4",
        ),
        actor=OPERATOR,
    )


def _planned(w: World, data: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """A finished plan job (immediate queue) and its plan."""
    master = _store_clip(w, data)
    job = w.client.post(f"/recordings/{master.id}/redaction-jobs", headers=w.headers("asb"), json={})
    assert job.status_code == 202 and job.json()["state"] == "succeeded", job.text
    plan = w.client.get(f"/jobs/{job.json()['id']}/plan", headers=w.headers("asb")).json()
    return job.json(), plan


def test_a_render_refuses_a_plan_edited_after_it_was_queued(jw: World, clip_bytes: bytes) -> None:
    """Issue #11 finding 22: a render ran with a plan that was edited after the render was
    queued. The render is bound to its plan's SHA-256 at enqueue; when the plan job's plan is
    edited before the render runs, or the render's copy is changed, nothing is rendered and
    the job fails saying so."""
    w = jw
    job, plan = _planned(w, clip_bytes)
    # A worker is not running: the render waits in the queue.
    w.client.app.state.jobs = queue = open_job_queue(  # type: ignore[attr-defined]
        w.vault.settings, vault=w.vault)
    queued = w.client.post(f"/jobs/{job['id']}/render", headers=w.headers("asb"))
    assert queued.status_code == 202 and queued.json()["state"] == "queued", queued.text
    # Meanwhile the reviewer changes the plan (here: keeps the requester's track visible).
    plan["tracks"][0]["keep"] = True
    assert w.client.put(f"/jobs/{job['id']}/plan", headers=w.headers("asb"), json=plan).status_code == 200
    queue.run(queued.json()["id"])
    failed = get_job(w.vault, queued.json()["id"])
    assert failed.state == JobState.FAILED
    assert "PlanChanged" in (failed.error or "") and "edited after this render was queued" in failed.error
    assert not (failed.result or {}).get("redacted_recording_id")
    assert w.vault.ledger.events(action="redaction_rendered") == []

    # A render asked for now renders the edited plan.
    again = w.client.post(f"/jobs/{job['id']}/render", headers=w.headers("asb"))
    queue.run(again.json()["id"])
    done = get_job(w.vault, again.json()["id"])
    assert done.state == JobState.SUCCEEDED, done.error
    assert done.result["plan_sha256"] == done.params["plan_sha256"]

    # A render job whose own copy of the plan is changed under it is refused too.
    third = w.client.post(f"/jobs/{job['id']}/render", headers=w.headers("asb"))
    with w.vault.sessions.begin() as session:
        swapped = dict(plan, caption="changed under the queue")
        session.execute(update(Job).where(Job.id == third.json()["id"]).values(plan=swapped))
    queue.run(third.json()["id"])
    refused = get_job(w.vault, third.json()["id"])
    assert refused.state == JobState.FAILED and "not the one it was queued with" in refused.error


def test_put_plan_documents_x_purpose_as_required(jw: World, clip_bytes: bytes) -> None:
    """Issue #11 finding 22: ``PUT /jobs/{id}/plan`` needs ``X-Purpose`` and the OpenAPI
    description said it was optional."""
    schema = jw.client.get("/openapi.json").json()
    params = schema["paths"]["/jobs/{job_id}/plan"]["put"]["parameters"]
    purpose = next(p for p in params if p["name"].lower() == "x-purpose")
    assert purpose["required"] is True
    # A client that leaves it out gets the 400 the description warns of, naming the header.
    job, plan = _planned(jw, clip_bytes)
    r = jw.client.put(f"/jobs/{job['id']}/plan", headers=jw.headers("asb", purpose=False), json=plan)
    assert r.status_code == 400 and "X-Purpose" in r.json()["detail"]


def test_every_route_documents_the_headers_it_requires(jw: World) -> None:
    """Issue #11 finding 22 (the class): on every route that needs ``X-Purpose`` the OpenAPI
    description marks it required, and no route takes the optional flavour and then insists."""
    app = jw.client.app
    schema = jw.client.get("/openapi.json").json()
    checked = 0
    for route, path, methods, documented in api_routes(app):  # type: ignore[arg-type]
        if not documented:
            continue
        needed = required_headers(route)
        for method in methods:
            params = schema["paths"][path][method.lower()].get("parameters", [])
            for param in params:
                if param["in"] == "header" and param["name"].lower() in needed:
                    assert param.get("required") is True, f"{method} {path}: {param['name']}"
                    checked += 1
        # A route on the optional flavour must not demand the purpose unconditionally.
        optional = [name for name, p in inspect.signature(route.endpoint).parameters.items()
                    if get_optional_purpose in getattr(p.annotation, "__metadata__", ())
                    or "OptionalPurposeDep" in str(p.annotation)]
        if optional:
            tree = ast.parse(textwrap.dedent(inspect.getsource(route.endpoint)))
            for node in ast.walk(tree):
                if isinstance(node, ast.Expr | ast.Assign) and isinstance(node.value, ast.Call):
                    call = node.value.func
                    assert not (isinstance(call, ast.Attribute) and call.attr == "require"
                                and isinstance(call.value, ast.Name) and call.value.id in optional), \
                        f"{path} insists on an optional X-Purpose"
    assert checked >= 7  # stream, download, clips, export package, redaction jobs, plan edit, render


def test_readyz_reports_a_queue_nobody_drains(world: World) -> None:
    """Issue #11 finding 22: jobs sat "queued" forever with no worker and ``/readyz`` said
    ready. It now reports the queue (oldest queued job's age, live workers by heartbeat):
    a warning while jobs wait with no worker, 503 once the oldest has waited past
    ``queue_fail_after_s``, and ok again when a worker's heartbeat is fresh and the queue is
    young."""
    w = world
    ready = w.client.get("/readyz").json()
    assert ready["checks"]["queue"] == "ok" and ready["queue"]["queued"] == 0
    r = w.client.post(f"/recordings/{w.rec['rec_site'].id}/redaction-jobs", headers=w.headers("asb"), json={})
    assert r.json()["state"] == "queued"

    waiting = w.client.get("/readyz")
    assert waiting.status_code == 200
    body = waiting.json()
    assert body["checks"]["queue"].startswith("warn:") and "start 'evidence-vault worker'" in body["checks"]["queue"]
    assert body["queue"]["queued"] == 1 and body["queue"]["live_workers"] == 0

    w.clock.advance(seconds=w.vault.settings.queue_fail_after_s + 1)
    stalled = w.client.get("/readyz")
    assert stalled.status_code == 503
    assert stalled.json()["checks"]["queue"].startswith("error:")
    assert stalled.json()["queue"]["oldest_queued_s"] > w.vault.settings.queue_fail_after_s

    # A live worker, and the job taken off the queue: ready again.
    with WorkerHeartbeat(w.vault.settings, kinds=["redaction_plan"], threads=1, clock=w.clock):
        with w.vault.sessions.begin() as session:
            session.execute(update(Job).values(state=JobState.CANCELLED))
        ok = w.client.get("/readyz")
        assert ok.status_code == 200 and ok.json()["checks"]["queue"] == "ok"
        assert ok.json()["queue"]["live_workers"] == 1
    # The worker's row goes when it stops.
    assert w.client.get("/readyz").json()["queue"]["live_workers"] == 0


def test_the_worker_command_keeps_a_heartbeat_readyz_can_see(world: World) -> None:
    """Issue #11 finding 22: ``evidence-vault worker`` reports itself alive while it runs (a
    ``job_workers`` row, touched every beat) and removes the row when stopped, so ``/readyz``
    counts live workers from the real command, not from a test double."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    w = world
    assert w.client.get("/readyz").json()["queue"]["live_workers"] == 0
    env = {**os.environ, "EVIDENCE_VAULT_HOME": str(w.vault.settings.home_dir),
           "EVIDENCE_VAULT_SEGMENT_SIZE": str(w.vault.settings.segment_size)}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-c", "from api.cli.worker import worker; worker(workers=1, log_level='warning')"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        w.clock.now = dt.datetime.now(dt.UTC)  # the worker beats on the real clock
        deadline = time.monotonic() + 60
        live = 0
        while live == 0 and time.monotonic() < deadline:
            time.sleep(0.2)
            live = w.client.get("/readyz").json()["queue"]["live_workers"]
        assert live == 1
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert w.client.get("/readyz").json()["queue"]["live_workers"] == 0
