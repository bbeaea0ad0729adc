"""Thumbnails in the browser (issue #12: "results on a per-camera timeline with thumbnail
frames"; the watch page's "thumbnails while scrubbing"), in real Chromium on real footage.

find → the timeline's rows show frames → watch → the scrub slider, moved by keyboard alone,
shows the frame at its position; axe-core and the strict CSP on each page; scrubbing asks for
one sheet however far it moves (one ``viewed`` event per sheet); another site's recording gives
no frame to the session.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tests.web.conftest import Checked, Served
from vault.ledger.custody import Action

PURPOSE = {"#reference": "ASB/2026/0142", "#purpose": "Identify who damaged the stairwell door",
           "#lawful_basis": "Anti-social Behaviour, Crime and Policing Act 2014"}


def _sheets(served: Served, recording_id: str) -> list[Any]:
    with served.open_vault() as vault:
        return [e.event for e in vault.ledger.events(action=Action.VIEWED.value, limit=10_000)
                if recording_id in e.event.object_ids and "thumbnails" in e.event.details]


def test_find_shows_frames_and_scrubbing_by_keyboard_shows_the_frame_there(
    contexts: Callable[..., Any], served: Served
) -> None:
    """Issue #12 items 3 and 4 (thumbnails): with the task's purpose stated, each result on the
    find page shows frames of its recording, and on the watch page the scrub slider (arrow
    keys) draws the frame at its position from one sheet: one ``viewed`` event for the sheet
    with the purpose, however many steps. Pages pass axe-core with no CSP report."""
    river = served.recordings["river"]
    checked = Checked(contexts(), served)
    page = checked.page
    served.sign_in(page, "asb")
    page.goto(f"{served.url}/purpose?next=/find")
    for field, value in PURPOSE.items():
        page.fill(field, value)
    page.click("main form button[type=submit]")
    page.wait_for_url("**/find")

    page.fill("#day", served.day)
    page.fill("#from", "14:00")
    page.fill("#to", "15:00")
    page.click("main form button[type=submit]")
    page.wait_for_selector("#results")
    thumbs = page.locator("#results img.ev-thumbs")
    assert thumbs.count() == 1  # the officer's one Riverside recording, not Oak Park's
    page.wait_for_function(
        "() => { const i = document.querySelector('#results img.ev-thumbs'); "
        "return i.complete && i.naturalWidth > 0; }", timeout=30_000)
    assert thumbs.first.evaluate("i => i.naturalHeight") == 90
    assert "frames from cam-river-1" in (thumbs.first.get_attribute("alt") or "")
    checked.audit("39-find-frames")
    assert len(_sheets(served, river)) == 1

    page.click("#results a")
    page.wait_for_url(f"**/watch/{river}")
    page.wait_for_function("() => Number.isFinite(document.getElementById('player').duration)",
                           timeout=30_000)
    page.focus("#scrub")
    for _ in range(3):
        page.keyboard.press("PageUp")  # by keyboard alone: a tenth of the range each
    page.wait_for_function(
        "() => { const c = document.getElementById('scrub-preview'); "
        "return !c.hidden && c.dataset.tile !== undefined; }", timeout=30_000)
    first = int(page.get_attribute("#scrub-preview", "data-tile") or "-1")
    for _ in range(4):
        page.keyboard.press("PageUp")
    page.wait_for_function(f"() => document.getElementById('scrub-preview').dataset.tile "
                           f"!== '{first}'")
    later = int(page.get_attribute("#scrub-preview", "data-tile") or "-1")
    assert 0 <= first < later < 40
    # The frame drawn is the sheet's tile, not a blank canvas.
    lit = page.evaluate("() => { const c = document.getElementById('scrub-preview'); "
                        "const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
                        " let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i] + d[i+1] "
                        "+ d[i+2]; return s / (d.length / 4); }")
    assert lit > 30
    assert page.get_attribute("#scrub", "aria-valuetext")  # the UK time of that position
    checked.audit("40-watch-scrub")

    sheets = _sheets(served, river)
    assert len(sheets) == 2  # the find page's and one for all the scrubbing
    assert all(e.actor == "asb" and e.reference == "ASB/2026/0142" for e in sheets)
    assert sorted(e.details["thumbnails"] for e in sheets) == [4, 40]
    responses = [r for r in checked.responses if "/thumbnails" in r.url]
    assert responses and all(r.status == 200 for r in responses)
    assert all("no-store" in r.headers.get("cache-control", "") for r in responses)

    # Another site's recording: the session gets no frame of it, and the refusal is logged.
    oak = served.recordings["oak"]
    refused = page.request.get(f"{served.url}/watch/{oak}/thumbnails?tiles=4")
    assert refused.status == 403
    assert _sheets(served, oak) == []
