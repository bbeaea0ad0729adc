"""Health routes: liveness (``/healthz``) and readiness (``/readyz``: catalog, object store and
job queue).

Neither needs a token nor touches footage; neither is a custody event.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

import datetime as dt

from vault.errors import VaultError
from vault.casework.jobs import queue_health

from ..deps import VaultDep
from ..schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Liveness",
    description="200 while the process serves requests. Checks nothing else.",
    response_model=Health,
)
def healthz() -> Health:
    return Health(status="ok")


@router.get(
    "/readyz",
    summary="Readiness",
    description="200 when the catalog answers a query, the object store is usable and the job "
    "queue is being drained; 503 naming what failed otherwise. `checks.queue` is `ok`, `warn: "
    "...` (jobs queued and no live worker, or the oldest queued past `queue_warn_after_s`: "
    "still 200) or `error: ...` (the oldest queued job has waited past `queue_fail_after_s`: "
    "503). `queue` gives the counts, the oldest queued job's age in seconds and the workers "
    "whose heartbeat is fresh.",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "A dependency is down"}},
)
def readyz(vault: VaultDep) -> JSONResponse:
    checks: dict[str, str] = {}
    try:
        with vault.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        checks["catalog"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; say which
        checks["catalog"] = f"error: {type(exc).__name__}"
    try:
        vault.store.check()
        checks["store"] = "ok"
    except VaultError as exc:
        checks["store"] = f"error: {exc}"
    queue: dict[str, object] | None = None
    if checks["catalog"] == "ok":
        # Jobs sitting "queued" with nobody to run them are an outage people cannot see.
        settings = vault.settings
        try:
            health = queue_health(
                vault, warn_after=dt.timedelta(seconds=settings.queue_warn_after_s),
                fail_after=dt.timedelta(seconds=settings.queue_fail_after_s))
        except Exception as exc:  # noqa: BLE001 - an older schema, a locked table: say which
            checks["queue"] = f"error: {type(exc).__name__}"
        else:
            queue = health.to_dict()
            checks["queue"] = {"ok": "ok", "warn": f"warn: {health.message}"}.get(
                health.status, f"error: {health.message}")
    ok = all(v == "ok" or v.startswith("warn:") for v in checks.values())
    body = Ready(status="ok" if ok else "unavailable", checks=checks, queue=queue)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


__all__ = ["router"]
