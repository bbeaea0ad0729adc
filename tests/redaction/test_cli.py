"""``evidence-vault redact``: the default one-pass form beside ``plan`` and ``render``."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from typer.testing import CliRunner

from api.cli.redact import redact_app
from redaction.synthetic import Clip

runner = CliRunner()


def parent_app() -> typer.Typer:
    """The top-level CLI mounts redact_app like this; test through it as a user would."""
    app = typer.Typer()

    @app.command()
    def version() -> None:
        typer.echo("x")

    app.add_typer(redact_app, name="redact")
    return app


def test_default_form_redacts_and_writes_the_plan(people_clip: Clip, tmp_path: Path) -> None:
    out, plan = tmp_path / "out.mp4", tmp_path / "plan.json"
    result = runner.invoke(parent_app(), ["redact", str(people_clip.path), "-o", str(out),
                                          "--plan-out", str(plan), "--mode", "pixelate",
                                          "--mute", "0.5-1.0", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["frames"] == people_clip.frame_count
    assert summary["tracks"] >= 2 and summary["faces"] >= 2
    assert {"review_spans", "fps", "sha256", "plan_sha256"} <= summary.keys()
    assert out.exists() and plan.exists()
    data = json.loads(plan.read_text())
    assert data["mask"]["style"] == "pixelate" and data["audio"][0]["action"] == "mute"


def test_plan_then_render_with_a_kept_track(people_clip: Clip, tmp_path: Path) -> None:
    plan, out = tmp_path / "plan.json", tmp_path / "out.mp4"
    r = runner.invoke(redact_app, ["plan", str(people_clip.path), "-o", str(plan), "--json"])
    assert r.exit_code == 0, r.output
    first = json.loads(plan.read_text())["tracks"][0]["id"]
    r = runner.invoke(redact_app, ["render", str(people_clip.path), str(plan), "-o", str(out),
                                   "--keep", str(first), "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["frames"] == people_clip.frame_count


def test_errors_are_one_line_and_a_nonzero_status(tmp_path: Path, people_clip: Clip) -> None:
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    r = runner.invoke(redact_app, [str(empty), "-o", str(tmp_path / "o.mp4")])
    assert r.exit_code != 0 and "zero-length" in r.output
    bad_plan = tmp_path / "bad.json"
    bad_plan.write_text('{"schema": "x"}')
    r = runner.invoke(redact_app, ["render", str(people_clip.path), str(bad_plan), "-o",
                                   str(tmp_path / "o.mp4")])
    assert r.exit_code != 0 and "not a redaction plan" in r.output
    r = runner.invoke(redact_app, [str(people_clip.path), "-o", str(tmp_path / "o.mp4"),
                                   "--mute", "soon"])
    assert r.exit_code == 2 and "START-END" in r.output
    assert not (tmp_path / "o.mp4").exists()


def test_help_names_the_three_forms() -> None:
    r = runner.invoke(parent_app(), ["redact", "--help"])
    assert r.exit_code == 0
    for word in ("plan", "render", "run"):
        assert word in r.output
    r = runner.invoke(redact_app, ["render", "--help"])
    assert r.exit_code == 0 and "--keep" in r.output


def test_redact_a_vault_recording_by_id(tmp_path: Path) -> None:
    import datetime as dt

    from typer.testing import CliRunner

    from api.cli import app
    from redaction.synthetic import make_clip
    from tests.redaction.conftest import two_people
    from vault import Actor, Role, Settings, Vault
    from vault.capture import Capture

    home = tmp_path / "home"
    clip = make_clip(tmp_path / "cam.mp4", two_people())
    with Vault.init(Settings(home=home)) as vault:
        master = vault.put_file(
            clip.path,
            Capture(
                source_id="cam-03", captured_at=dt.datetime(2026, 11, 20, tzinfo=dt.timezone.utc)
            ),
            actor=Actor(user="t", role=Role.ADMINISTRATOR),
        )
    out = tmp_path / "copy.mp4"
    result = CliRunner().invoke(app, ["redact", master.id, "-o", str(out), "--json", "--reference", "SAR-1"],
                                env={"EVIDENCE_VAULT_HOME": str(home)})
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["parent_id"] == master.id and out.stat().st_size > 0
    with Vault.open(Settings(home=home)) as vault:
        copy = vault.recording(summary["recording_id"])
        assert copy.parent_id == master.id and copy.sha256 == summary["sha256"]
    missing = CliRunner().invoke(app, ["redact", "00000000-0000-4000-8000-000000000000", "-o", str(tmp_path / "x.mp4")],
                                 env={"EVIDENCE_VAULT_HOME": str(home)})
    assert missing.exit_code == 3 and "no recording with id" in missing.stderr


def test_device_cuda_without_a_gpu_build_is_a_clear_error_and_writes_nothing(
        people_clip: Clip, tmp_path: Path) -> None:
    """Issue #13 item 6: ``--device cuda`` on onnxruntime without CUDA (this CPU-only build)
    says what to install, exits non-zero and leaves no output or plan; ``--device cpu``
    plans on the CPU and the plan says so."""
    out, plan = tmp_path / "o.mp4", tmp_path / "plan.json"
    r = runner.invoke(redact_app, ["run", str(people_clip.path), "-o", str(out),
                                   "--plan-out", str(plan), "--device", "cuda"])
    assert r.exit_code != 0 and "onnxruntime-gpu" in r.output, r.output
    assert not out.exists() and not plan.exists()
    r = runner.invoke(redact_app, ["plan", str(people_clip.path), "-o", str(plan),
                                   "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(plan.read_text())["parameters"]["provider"] == "CPUExecutionProvider"
