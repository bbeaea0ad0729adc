"""Health routes: liveness (``/healthz``) and readiness (``/readyz``: catalog and object store).

Neither needs a token nor touches footage; neither is a custody event.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from vault.errors import VaultError

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
    description="200 when the catalog answers a query and the object store is usable; 503 "
    "naming what failed otherwise.",
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
    ok = all(v == "ok" for v in checks.values())
    body = Ready(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


__all__ = ["router"]
