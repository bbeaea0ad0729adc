"""The share recipient's page: no account, the link is the credential.

``/s/<token>`` shows who shared what with whom, why, under which lawful basis and until when,
and plays each recording in the browser through the API's share stream route (which answers at
most a window per request: the player's Range requests fetch the rest, and no single response
is a copy). A download needs the recipient to acknowledge the terms, goes through
:func:`vault.casework.shares.access_share` like the API's download route (counted against the limit,
logged), and is a form with a CSRF token (double-submit cookie, as before sign-in) so another
site cannot spend the recipient's downloads. Every use of the link, allowed or refused, is a
custody event; a revoked, expired or used-up link is a page saying so (410). The page also
checks, in the browser and without uploading anything, a downloaded recording's SHA-256 or a
whole disclosure package (``static/check.js``: the checks of the package's verify_export.py)
against this vault's verifier key and log origin.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import Response

from vault.casework import shares as share_ops
from vault.ledger.custody import Action
from vault.errors import InvalidInput

from .._streaming import footage_response
from ..deps import client_addr
from ..schemas import UUID_PATTERN
from . import _security as sec
from .routes import CsrfField, _route, _settings, _vault, page, templates

router = APIRouter(route_class=sec.make_route_class(templates), include_in_schema=False)

ShareToken = Annotated[str, Path(min_length=1, max_length=128)]
RecordingId = Annotated[str, Path(pattern=UUID_PATTERN)]


def _grant(request: Request, token: str, access: share_ops.ShareAccess,
           recording_id: str | None = None) -> share_ops.ShareGrant:
    return share_ops.access_share(
        _vault(request), token, access, recording_id=recording_id,
        client_addr=client_addr(request), route=_route(request),
        throttle=request.app.state.denials)


def _recipient_page(request: Request, token: str, *, error: str | None = None,
                    status: int = 200) -> Response:
    settings = _settings(request)
    grant = _grant(request, token, share_ops.ShareAccess.METADATA)
    share = grant.share
    csrf = request.cookies.get(sec.csrf_cookie_name(settings)) or sec.new_csrf_token()
    left = None if share.max_downloads is None else max(0, share.max_downloads - share.downloads)
    response = page(request, "recipient.html", {
        "share": share, "recordings": grant.recordings, "token": token, "csrf": csrf,
        "downloads_left": left, "error": error, "web": None,
        # The trust anchor for the in-browser package check: the vault's own key and log,
        # not the copy inside a package (which proves integrity but not origin).
        "verifier_key": _vault(request).ledger.verifier_key(),
        "origin": _vault(request).ledger.origin})
    response.status_code = status
    sec.set_cookie(response, settings, sec.csrf_cookie_name(settings), csrf)
    return response


@router.get("/s/{token}")
def recipient(request: Request, token: ShareToken) -> Response:
    """What the share grants, with a player per recording (``share_accessed`` event)."""
    return _recipient_page(request, token)


@router.post("/s/{token}/recordings/{recording_id}/download")
def recipient_download(
    request: Request, token: ShareToken, recording_id: RecordingId,
    csrf_token: CsrfField = None,
    acknowledge: Annotated[str, Form(max_length=8)] = "",
) -> Response:
    """The whole file, once the recipient has acknowledged the terms; one download counted."""
    settings = _settings(request)
    # Before the share is touched: a forged form spends nothing and learns nothing.
    sec.check_csrf(request, csrf_token, request.cookies.get(sec.csrf_cookie_name(settings)))
    if acknowledge != "yes":
        return _recipient_page(
            request, token, status=400,
            error="Confirm that you will handle the footage as the terms below say, then "
                  "download again")
    grant = _grant(request, token, share_ops.ShareAccess.DOWNLOAD, recording_id)
    recording = next((r for r in grant.recordings if r.id == recording_id), None)
    if recording is None:  # pragma: no cover - access_share refuses an item not shared
        raise InvalidInput("that recording is not part of this share")
    return footage_response(
        _vault(request), recording, actor=grant.actor, purpose=grant.purpose, range_header=None,
        action=Action.DOWNLOADED,
        attachment=True, details={"via": "web", "acknowledged": True})


__all__ = ["router"]
