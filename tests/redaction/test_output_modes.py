"""A rendered redacted copy is written 0600 (issue #11 finding 11)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from redaction.detect import CenterFace
from redaction.pipeline import redact_video
from redaction.synthetic import Clip


def test_rendered_copy_is_0600_whatever_the_umask(
    people_clip: Clip, tmp_path: Path, detector: CenterFace
) -> None:
    """Issue #11 finding 11: the encoder created its output with the process umask (0666
    under umask 000); a redacted copy still shows people, so it is 0600 from creation."""
    out = tmp_path / "redacted.mp4"
    old = os.umask(0)
    try:
        redact_video(people_clip.path, out, detector=detector)
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["redacted.mp4"]
