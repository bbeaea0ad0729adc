"""Fixtures for the redaction tests: one detector per session and synthetic clips."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from redaction import CenterFace
from redaction.synthetic import Clip, Face, circle, linear, make_clip


@pytest.fixture(scope="session")
def detector() -> CenterFace:
    return CenterFace()


@pytest.fixture
def clip_factory(tmp_path: Path) -> Callable[..., Clip]:
    """make_clip into the test's temporary directory: ``clip_factory("a.mp4", faces, ...)``."""

    def make(name: str, faces: list[Face], **kwargs: Any) -> Clip:
        return make_clip(tmp_path / name, faces, **kwargs)

    return make


def two_people(seconds: float = 2.0) -> list[Face]:
    """A face walking across and one circling: 26 and 34 px tall in a 320x240 frame."""
    return [
        Face(linear(50, 80, 270, 150, seconds), 26),
        Face(circle(170, 150, 40, seconds), 34, mirror=True, gain=0.9),
    ]


@pytest.fixture(scope="session")
def people_clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """A 2 s 320x240 H.264/AAC MP4 with two moving faces and a 440 Hz tone (shared, read-only)."""
    return make_clip(tmp_path_factory.mktemp("clips") / "people.mp4", two_people())
