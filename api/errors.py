"""HTTP status codes for vault errors: the one place they are chosen.

Every error response has the body ``{"error": "<kind>", "detail": "<message>"}``; messages
carry ids, never footage, keys or tokens. The table, most specific class first:

=====================  ======  ==============================================================
error                  status  meaning
=====================  ======  ==============================================================
Unauthenticated         401    no, malformed, unknown, expired or revoked bearer token
                               (with ``WWW-Authenticate: Bearer``)
ShareUnavailable        410    the share was revoked, expired or used up
AccessDenied            403    the role or need-to-know scope does not allow it
MissingHeader           400    a footage route needs X-Purpose (and names the header)
RangeNotSatisfiable     416    a Range outside the recording (``Content-Range: bytes */N``)
InvalidInput            400    the vault refused the input
PlanError               422    a redaction plan that does not validate or fit the footage
MediaError              422    footage that cannot be decoded (corrupt, truncated, no video)
DetectorUnavailable     503    the face detector cannot run on the device it was set to use
NotFound                404    no such recording, case, hold, share or event
Shredded                410    the footage was deleted by retention; its key is destroyed
KeyUnavailable          503    a key cannot be had (keyring, KMS)
IntegrityError          409    stored data or the custody log does not verify
StorageError            503    the object store failed or is unreachable
NvrError                502    a site NVR asked for past footage is down, refused the vault's
                               credentials or answered badly (ingest/pull.py)
SpoolLocked             409    another pull from the same NVR is running
VaultError (other)      500
=====================  ======  ==============================================================
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from vault.errors import (
    AccessDenied,
    IntegrityError,
    InvalidInput,
    KeyUnavailable,
    LedgerError,
    NotFound,
    Shredded,
    StorageError,
    VaultError,
)
from ingest.errors import NvrError, SpoolLocked
from redaction.errors import DetectorUnavailable, MediaError, PlanError
from vault.errors import ShareUnavailable, Unauthenticated


class MissingHeader(InvalidInput):
    """A required request header is absent or empty."""

    def __init__(self, header: str, why: str) -> None:
        super().__init__(f"the {header} header is required: {why}")
        self.header = header


class RangeNotSatisfiable(InvalidInput):
    """The Range header asks for bytes the recording does not have."""

    def __init__(self, message: str, *, size: int) -> None:
        super().__init__(message)
        self.size = size


# (class, status, kind); the first match wins, so subclasses come before their bases.
STATUS: list[tuple[type[VaultError], int, str]] = [
    (Unauthenticated, 401, "unauthenticated"),
    (ShareUnavailable, 410, "share_unavailable"),
    (AccessDenied, 403, "forbidden"),
    (MissingHeader, 400, "missing_header"),
    (RangeNotSatisfiable, 416, "range_not_satisfiable"),
    (InvalidInput, 400, "invalid_input"),
    (PlanError, 422, "invalid_plan"),
    (DetectorUnavailable, 503, "detector_unavailable"),
    (MediaError, 422, "unreadable_media"),
    (NotFound, 404, "not_found"),
    (Shredded, 410, "shredded"),
    (KeyUnavailable, 503, "key_unavailable"),
    (LedgerError, 409, "custody_integrity"),
    (IntegrityError, 409, "integrity"),
    (StorageError, 503, "storage_unavailable"),
    (NvrError, 502, "nvr_error"),
    (SpoolLocked, 409, "busy"),
    (VaultError, 500, "vault_error"),
]


def status_for(error: VaultError) -> tuple[int, str]:
    """The HTTP status and error kind for ``error``."""
    for cls, status, kind in STATUS:
        if isinstance(error, cls):
            return status, kind
    return 500, "vault_error"  # pragma: no cover - VaultError is last in STATUS


def error_response(error: VaultError) -> JSONResponse:
    """The JSON response for a vault error, with the headers its status needs."""
    status, kind = status_for(error)
    body: dict[str, Any] = {"error": kind, "detail": str(error)}
    headers: dict[str, str] = {"Cache-Control": "no-store"}
    if isinstance(error, Unauthenticated):
        # RFC 6750 section 3: a missing token gets no error code; a bad one is invalid_token.
        desc = str(error).replace('"', "'")
        headers["WWW-Authenticate"] = (
            'Bearer realm="evidence-vault"'
            if error.reason == "missing"
            else f'Bearer realm="evidence-vault", error="invalid_token", error_description="{desc}"'
        )
    if isinstance(error, RangeNotSatisfiable):
        headers["Content-Range"] = f"bytes */{error.size}"
    if isinstance(error, LedgerError) and error.seq is not None:
        body["seq"] = error.seq
    if isinstance(error, MissingHeader):
        body["header"] = error.header
    return JSONResponse(body, status_code=status, headers=headers)


async def _handle(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, VaultError)
    return error_response(error)


_HTTP_KINDS = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_media_type",
}


def _handle_http_response(error: StarletteHTTPException) -> JSONResponse:
    body = {"error": _HTTP_KINDS.get(error.status_code, "http_error"), "detail": str(error.detail)}
    return JSONResponse(body, status_code=error.status_code, headers=error.headers)


async def _handle_http(request: Request, error: Exception) -> JSONResponse:
    # Starlette's own errors (unrouted path, wrong method, unparseable JSON) get the same body.
    assert isinstance(error, StarletteHTTPException)
    return _handle_http_response(error)


def install(app: FastAPI) -> None:
    """Register the error handlers on ``app``."""
    app.add_exception_handler(VaultError, _handle)
    app.add_exception_handler(StarletteHTTPException, _handle_http)


# Documented error responses, for the OpenAPI description of each route.
def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    text = {
        400: "Invalid input or a missing header",
        401: "Missing, unknown, expired or revoked bearer token",
        403: "Not allowed for your role or outside your need-to-know scope (logged)",
        404: "Not found",
        409: "Stored data or the custody log does not verify; or busy (another pull)",
        410: "Gone: deleted by retention, or a revoked, expired or used-up share",
        413: "The request body is larger than this route accepts",
        416: "Range not satisfiable",
        422: "The footage cannot be decoded (corrupt, truncated, no video), or a redaction plan "
             "does not validate or fit the footage (`unreadable_media`, `invalid_plan`)",
        502: "The site NVR is down, refused the vault's credentials or answered badly",
        503: "Storage or key service unavailable",
    }
    from .schemas import ErrorBody, ValidationErrorBody

    # A 422 is either ours (footage or plan) or FastAPI's request validation, whose body has
    # another shape: declaring only ours would make every validation answer break the schema.
    return {s: {"model": ErrorBody | ValidationErrorBody if s == 422 else ErrorBody,
                "description": text[s]} for s in statuses}


__all__ = [
    "STATUS",
    "MissingHeader",
    "RangeNotSatisfiable",
    "error_response",
    "install",
    "responses",
    "status_for",
]
