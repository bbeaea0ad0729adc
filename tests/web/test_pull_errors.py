"""The find page's NVR pull when it cannot pull, in real Chromium (issue #12 / #17): a recorder
that does not answer is a 502 page and another pull from it running a 409 page, each saying
what happened and what the officer can do, with nothing pulled, the window still filled in,
axe-core clean and no CSP report.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ingest.pull import PULL_ACTION, pull_spool_dir
from ingest.spool import Spool
from tests.servers import free_port
from tests.web.conftest import SEGMENT, Checked, Served, _populate, run_serve
from vault.config import Settings

NVR = "nvr-river"


@pytest.fixture(scope="module")
def served_down(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The web fixture's world, with an agents file naming a Riverside NVR for cam-river-1
    at a loopback port nothing listens on."""
    tmp = tmp_path_factory.mktemp("pull-errors")
    home = tmp / "home"
    agents = tmp / "agents.toml"
    agents.write_text(
        '[agent]\nname = "pull-errors"\n\n[[nvrs]]\n'
        f'id = "{NVR}"\nkind = "mediamtx"\nsite = "Riverside"\n'
        f'url = "http://127.0.0.1:{free_port()}"\ncredentials = "env:NVR_TEST_CREDENTIALS"\n'
        'cameras = { "cam-river-1" = "cam1" }\n')
    settings = Settings(home=home, segment_size=SEGMENT, agents_file=agents)
    secrets, recordings, day, zone = _populate(settings, tmp)
    with run_serve(home, EVIDENCE_VAULT_AGENTS_FILE=str(agents),
                   NVR_TEST_CREDENTIALS="viewer:secret") as url:
        yield Served(url=url, home=home, settings=settings, secrets=secrets,
                     recordings=recordings, day=day, zone=zone)


def _pull(checked: Checked) -> Any:
    """Press the pull button; the response to the form's POST. Chromium reports an error status
    of the page itself on the console: that one report is expected, any other still fails."""
    page = checked.page
    with page.expect_response(lambda r: r.url.endswith("/find/pull")) as answer:
        page.click("#pull button[type=submit]")
    page.wait_for_load_state("load")
    expected = f"the server responded with a status of {answer.value.status}"
    checked.problems = [p for p in checked.problems if expected not in p]
    return answer.value


def test_pull_errors_say_what_happened_and_what_to_do(
    contexts: Callable[..., Any], served_down: Served
) -> None:
    """Issue #12 item 4 (the NVR pull form's error pages): with the recorder down the page is a
    502 that says it did not answer, that nothing was pulled, to try again and whom to ask,
    with the ingest error for IT; with another pull from it running (its spool locked) a 409
    that says to wait and press the button again, and shows no server path. Both keep the
    window in the form (the button is there to press again), pass axe-core, and pull nothing."""
    served = served_down
    checked = Checked(contexts(), served)
    page = checked.page
    served.sign_in(page, "asb")
    page.goto(f"{served.url}/purpose?next=/find")
    page.fill("#reference", "ASB/2026/0142")
    page.fill("#purpose", "Find the stairwell incident")
    page.fill("#lawful_basis", "Anti-social Behaviour, Crime and Policing Act 2014")
    page.click("main form button[type=submit]")
    page.wait_for_url("**/find")
    page.goto(f"{served.url}/find?camera=cam-river-1&day={served.day}&from=14:00&to=15:00")
    page.wait_for_selector("#pull button[type=submit]")

    down = _pull(checked)
    assert down.status == 502
    summary = page.inner_text(".govuk-error-summary")
    assert f"The recorder {NVR} did not answer, so nothing was pulled" in summary
    assert "Try again in a few minutes" in summary and "ask IT" in summary
    assert "Details for IT:" in summary  # the ingest error, for whoever they report it to
    assert page.is_visible("#pull button[type=submit]")  # the window is still there
    checked.audit("41-pull-recorder-down")

    spool = Spool(pull_spool_dir(served.settings, NVR))  # another pull holds the spool
    try:
        busy = _pull(checked)
    finally:
        spool.close()
    assert busy.status == 409
    summary = page.inner_text(".govuk-error-summary")
    assert f"Another pull from the recorder {NVR} is still running" in summary
    assert "press Pull this window from the NVR again" in summary
    assert str(served.settings.spool_dir) not in page.content()
    assert page.is_visible("#pull button[type=submit]")
    checked.audit("42-pull-busy")

    with served.open_vault() as vault:
        pulls = vault.ledger.events(action=PULL_ACTION, limit=100)
    assert all(not e.event.object_ids for e in pulls)  # nothing came in either time


def test_the_spool_is_where_the_server_pulls(tmp_path: Path) -> None:
    """The test above locks the path the server's pull uses (a guard for the test itself)."""
    settings = Settings(home=tmp_path / "home")
    assert pull_spool_dir(settings, NVR).is_relative_to(settings.spool_dir)
