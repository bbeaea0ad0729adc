"""Keyset paging in the search API and ``ls`` (issue #15): a deep page costs what the first does."""

from __future__ import annotations

import json
import os
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app as cli_app

from .conftest import World


def test_search_pages_with_next_after(world: World) -> None:
    """Issue #15 build 3: a full page names ``next_after``; passing it back gives the rest, and
    the last page names none (deep ``offset`` made the catalog sort and skip every earlier row)."""
    admin = world.headers("admin")
    response = world.client.get("/recordings", params={"limit": 100}, headers=admin)
    assert response.status_code == 200, response.text
    everything = response.json()
    assert len(everything["items"]) == 3 and everything["next_after"] is None
    seen, after = [], None
    while True:
        params: dict[str, object] = {"limit": 2, **({"after": after} if after else {})}
        page = world.client.get("/recordings", params=params, headers=admin)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [item["id"] for item in body["items"]]
        after = body["next_after"]
        if after is None:
            break
    assert seen == [item["id"] for item in everything["items"]]
    bad = world.client.get("/recordings", params={"after": "garbage!!"}, headers=admin)
    assert bad.status_code == 400 and "paging cursor" in bad.text


def test_ls_pages_through_everything_and_names_the_cursor(tmp_path: Path) -> None:
    """Issue #15 build 3: ``ls`` with no --limit lists every recording (it stopped at 1,000);
    with --limit it names the cursor to go on from, and --after continues there."""
    runner = CliRunner()
    env = {"EVIDENCE_VAULT_HOME": str(tmp_path / "home")}
    assert runner.invoke(cli_app, ["init"], env=env).exit_code == 0
    ids = []
    for n in range(3):
        clip = tmp_path / f"c{n}.bin"
        clip.write_bytes(os.urandom(500))
        put = runner.invoke(cli_app, ["put", str(clip), "--source", "cam-1", "--captured-at",
                                      f"2026-11-25T14:3{n}:00Z", "--json"], env=env)
        ids.append(json.loads(put.stdout)["id"])
    listed = runner.invoke(cli_app, ["ls", "--json"], env=env)
    assert listed.exit_code == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == ids
    cut = runner.invoke(cli_app, ["ls", "--limit", "1", "--json"], env=env)
    assert [r["id"] for r in json.loads(cut.stdout)] == ids[:1]
    cursor = cut.stderr.split("--after ")[1].split()[0]
    rest = runner.invoke(cli_app, ["ls", "--after", cursor, "--json"], env=env)
    assert [r["id"] for r in json.loads(rest.stdout)] == ids[1:]
    assert "more match" not in rest.stderr
