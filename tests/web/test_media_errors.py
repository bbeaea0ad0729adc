"""Errors on web pages are pages (issue #12: "a message a person can act on").

A browser user never gets the API's JSON body: whatever a web route raises (a vault error, a
media or plan error from redaction, an ingest error) is the web app's error page with the
status the API would give and a message that says what to do. The journey cuts a clip from a
recording whose footage cannot be decoded (bytes made on the fly that are not video).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Callable
from typing import Any

import pytest

from tests.web.conftest import OPERATOR, Checked, Served
from vault.capture import Capture
from vault.storage.catalog import MediaKind, SourceKind

PURPOSE = {"#reference": "ASB/2026/0199", "#purpose": "Find who broke the lift",
           "#lawful_basis": "Anti-social Behaviour, Crime and Policing Act 2014"}


@pytest.fixture(scope="module")
def broken(served: Served) -> tuple[str, dt.datetime]:
    """A Riverside 'video' recording whose bytes are an MP4 cut off after its first 2 KiB of
    noise: stored and listed like any other, but no frame of it decodes."""
    start = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(days=1, hours=3)
    junk = b"\x00\x00\x00\x18ftypisom" + bytes((i * 37) % 251 for i in range(2048))
    with served.open_vault() as vault:
        rec = vault.put_stream(io.BytesIO(junk), Capture(
            source_id="cam-river-broken", source_kind=SourceKind.CCTV, site="Riverside",
            captured_at=start, captured_end=start + dt.timedelta(seconds=6),
            media_kind=MediaKind.VIDEO, original_name="broken.mp4"), actor=OPERATOR)
    return rec.id, start


def test_a_clip_of_footage_that_cannot_be_decoded_is_an_error_page(
    contexts: Callable[..., Any], served: Served, broken: tuple[str, dt.datetime]
) -> None:
    """Issue #12 (media errors on web pages): cutting a clip from a recording whose footage
    does not decode shows the web app's error page (HTML, status 422, the page headers), with
    the reason and what to do, never the API's JSON; the page passes axe-core."""
    from api.web.uktime import UK

    recording_id, start = broken
    checked = Checked(contexts(), served)
    page = checked.page
    served.sign_in(page, "asb")
    page.goto(f"{served.url}/purpose?next=/watch/{recording_id}")
    for field, value in PURPOSE.items():
        page.fill(field, value)
    page.click("main form button[type=submit]")
    page.wait_for_url(f"**/watch/{recording_id}")
    local = start.astimezone(UK)
    page.fill("#clip-day", local.strftime("%Y-%m-%d"))
    page.fill("#clip-start", (local + dt.timedelta(seconds=1)).strftime("%H:%M:%S"))
    page.fill("#clip-end", (local + dt.timedelta(seconds=4)).strftime("%H:%M:%S"))
    with page.expect_navigation() as nav:
        page.click("#cut-clip")
    response = nav.value
    body = page.content()
    assert response.status == 422
    assert response.headers["content-type"].startswith("text/html")
    assert '"error"' not in page.inner_text("body")
    main = page.inner_text("main")
    assert "not a readable media file" in main and "cannot be decoded" in main
    assert "tell your administrator" in main
    # The page's own 422 is the one console error expected (the browser reports the status).
    checked.problems = [p for p in checked.problems if "status of 422" not in p]
    checked.audit("media-error-page")
