"""Incident clips: cut across segment boundaries, frame-exact, with provenance and custody."""

from __future__ import annotations

import datetime as dt
import hashlib
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest

from redaction.clips import METHOD_REENCODE, METHOD_SMART, assemble_clip
from vault import (
    Action,
    Actor,
    InvalidInput,
    MediaKind,
    NotFound,
    Purpose,
    Role,
    Settings,
    SourceKind,
    Vault,
)
from vault.capture import Capture

ACTOR = Actor(user="asb-1", role=Role.ASB_OFFICER, organisation="Housing")
PURPOSE = Purpose(purpose="ASB incident, stairwell", reference="ASB/2026/31")
T0 = dt.datetime(2026, 11, 3, 14, 32, tzinfo=dt.UTC)
FPS = 25
GOP = 25
SECONDS = 4
BITS = 10
W, H = 320, 240


def _image(n: int) -> np.ndarray:
    """Frame ``n``: its number in 10 black/white blocks along the top, over a shifting colour."""
    img = np.zeros((H, W, 3), np.uint8)
    img[:] = ((n * 7) % 200 + 30, (n * 13) % 200 + 30, 90)
    block = W // BITS
    for bit in range(BITS):
        img[:40, bit * block:(bit + 1) * block] = 235 if n >> bit & 1 else 16
    return img


def frame_number(img: np.ndarray) -> int:
    """The number :func:`_image` drew on a (decoded) frame."""
    block = W // BITS
    return sum(1 << bit for bit in range(BITS)
               if img[8:32, bit * block + 6:(bit + 1) * block - 6].mean() > 128)


def make_segment(path: Path, first: int, *, audio: bool = True, codec: str = "libx264") -> Path:
    """A 4 s 320x240 segment of frames ``first``... with a keyframe every second (and a tone)."""
    tb = Fraction(1, 90_000)
    with av.open(str(path), "w") as out:
        vs = out.add_stream(codec, rate=FPS)
        vs.width, vs.height, vs.pix_fmt = W, H, "yuv420p"
        vs.time_base = tb
        vs.codec_context.time_base = tb
        vs.codec_context.gop_size = GOP
        if codec == "libx264":
            vs.options = {"preset": "ultrafast", "crf": "18", "x264-params": f"keyint={GOP}:min-keyint={GOP}:scenecut=0"}
        as_ = None
        if audio:
            as_ = out.add_stream("aac", rate=16_000)
            as_.layout = "mono"
        for i in range(SECONDS * FPS):
            vf = av.VideoFrame.from_ndarray(_image(first + i), format="bgr24")
            vf.pts = round(Fraction(i, FPS) / tb)
            vf.time_base = tb
            for pkt in vs.encode(vf):
                out.mux(pkt)
        for pkt in vs.encode(None):
            out.mux(pkt)
        if as_ is not None:
            rate = 16_000
            for k in range(0, SECONDS * rate, 1024):
                n = min(1024, SECONDS * rate - k)
                t = (k + np.arange(n)) / rate
                af = av.AudioFrame.from_ndarray(
                    (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None], format="fltp", layout="mono")
                af.sample_rate, af.pts, af.time_base = rate, k, Fraction(1, rate)
                for pkt in as_.encode(af):
                    out.mux(pkt)
            for pkt in as_.encode(None):
                out.mux(pkt)
    return path


def decoded(path: Path) -> tuple[list[int], list[float]]:
    """Frame numbers and times of every frame of a file, decoded in full with PyAV."""
    numbers, times = [], []
    with av.open(str(path)) as c:
        for frame in c.decode(c.streams.video[0]):
            numbers.append(frame_number(frame.to_ndarray(format="bgr24")))
            times.append(float(frame.time))
    return numbers, times


@pytest.fixture
def vault(tmp_path: Path):  # type: ignore[no-untyped-def]
    with Vault.init(Settings(home=tmp_path / "home")) as v:
        yield v


def _store_segments(vault: Vault, tmp_path: Path, **kw: object) -> list:  # type: ignore[type-arg]
    recs = []
    for n in range(2):
        path = make_segment(tmp_path / f"seg{n}.mp4", n * SECONDS * FPS, **kw)  # type: ignore[arg-type]
        start = T0 + dt.timedelta(seconds=n * SECONDS)
        recs.append(vault.put_file(
            path,
            Capture(
                source_id="cam-3",
                source_kind=SourceKind.CCTV,
                captured_at=start,
                captured_end=start + dt.timedelta(seconds=SECONDS),
                media_kind=MediaKind.VIDEO,
            ),
            actor=ACTOR,
        ))
    return recs


@pytest.mark.parametrize("method", ["auto", "reencode"])
def test_clip_across_two_segments_is_frame_exact(vault: Vault, tmp_path: Path, method: str) -> None:
    seg1, seg2 = _store_segments(vault, tmp_path)
    # 2.30 s into the first segment to 2.50 s into the second: neither on a keyframe.
    start, end = T0 + dt.timedelta(seconds=2.3), T0 + dt.timedelta(seconds=6.5)
    clip = assemble_clip(vault, "cam-3", start, end, actor=ACTOR, purpose=PURPOSE, method=method)

    assert clip.method == (METHOD_SMART if method == "auto" else METHOD_REENCODE)
    out = tmp_path / "clip.mp4"
    vault.export_file(clip.recording.id, out, actor=ACTOR, purpose=PURPOSE)
    numbers, times = decoded(out)  # plays: every frame decodes
    # First frame: the one at 2.32 s (58); last: the one at 6.48 s (100 + 62).
    assert numbers[0] == 58 and numbers[-1] == 162
    assert numbers == list(range(58, 163))  # no frame lost or doubled at the joins
    assert clip.frame_count == 105
    assert times[-1] - times[0] == pytest.approx(104 / FPS, abs=1e-3)
    with av.open(str(out)) as c:
        assert c.format.name.startswith("mov")
        assert c.streams.video[0].codec_context.name == "h264"
        assert c.streams.audio[0].codec_context.name == "aac"
        audio_s = float(c.streams.audio[0].duration * c.streams.audio[0].time_base)
    assert audio_s == pytest.approx(105 / FPS, abs=0.1)
    head = out.read_bytes()[:4096]
    assert head.find(b"moov") < head.find(b"mdat") or b"mdat" not in head  # faststart

    rec = clip.recording
    assert rec.parent_id == seg1.id and rec.source_id == "cam-3"
    assert rec.captured_start == T0 + dt.timedelta(seconds=2.32)
    assert rec.sha256 == hashlib.sha256(out.read_bytes()).hexdigest()
    prov = rec.provenance or {}
    assert prov["kind"] == "clip" and prov["method"] == clip.method
    assert prov["window"] == [start.isoformat(), end.isoformat()]
    assert [(s["id"], s["sha256"]) for s in prov["sources"]] == [
        (seg1.id, seg1.sha256), (seg2.id, seg2.sha256)]
    assert [(s["from_ms"], s["to_ms"]) for s in prov["sources"]] == [(2320, 4000), (0, 2520)]
    assert prov["software_version"]
    if method == "auto":
        kinds = [[p[0] for p in s["parts"]] for s in prov["sources"]]
        assert kinds == [["encode", "copy"], ["copy", "encode"]]

    # Custody: each source was cut with the officer's purpose, and the clip was assembled.
    for seg in (seg1, seg2):
        cut = [e for e in vault.ledger.events(object_id=seg.id) if e.action == "clip.cut"]
        assert len(cut) == 1 and cut[0].event.purpose == PURPOSE.purpose
    made = vault.ledger.events(object_id=rec.id)
    assert made[0].action == "clip.assembled"
    assert made[0].event.details["sources"] == [seg1.id, seg2.id]
    assert list(vault.settings.spool_dir.iterdir()) == []


def test_window_inside_one_gop_is_reencoded(vault: Vault, tmp_path: Path) -> None:
    _store_segments(vault, tmp_path, audio=False)
    start, end = T0 + dt.timedelta(seconds=1.1), T0 + dt.timedelta(seconds=1.5)
    clip = assemble_clip(vault, "cam-3", start, end, actor=ACTOR, purpose=PURPOSE)
    out = tmp_path / "short.mp4"
    vault.export_file(clip.recording.id, out, actor=ACTOR, purpose=PURPOSE)
    assert decoded(out)[0] == list(range(28, 38))
    assert clip.method == METHOD_REENCODE


def test_clips_are_not_cut_from_clips(vault: Vault, tmp_path: Path) -> None:
    seg1, seg2 = _store_segments(vault, tmp_path, audio=False)
    start, end = T0 + dt.timedelta(seconds=3), T0 + dt.timedelta(seconds=5)
    first = assemble_clip(vault, "cam-3", start, end, actor=ACTOR, purpose=PURPOSE)
    second = assemble_clip(vault, "cam-3", start, end, actor=ACTOR, purpose=PURPOSE)
    assert second.source_ids == (seg1.id, seg2.id)
    assert second.recording.id == first.recording.id  # same bytes, same source: one recording


def test_clear_errors(vault: Vault, tmp_path: Path) -> None:
    _store_segments(vault, tmp_path, audio=False)
    with pytest.raises(NotFound, match="cam-3.*2026-11-04"):
        assemble_clip(vault, "cam-3", T0 + dt.timedelta(days=1), T0 + dt.timedelta(days=1, minutes=1),
                      actor=ACTOR, purpose=PURPOSE)
    with pytest.raises(NotFound, match="cam-9"):
        assemble_clip(vault, "cam-9", T0, T0 + dt.timedelta(seconds=2), actor=ACTOR, purpose=PURPOSE)
    with pytest.raises(InvalidInput, match="end after it starts"):
        assemble_clip(vault, "cam-3", T0, T0, actor=ACTOR, purpose=PURPOSE)
    with pytest.raises(InvalidInput, match="at most"):
        assemble_clip(vault, "cam-3", T0, T0 + dt.timedelta(hours=3), actor=ACTOR, purpose=PURPOSE)
    audio = tmp_path / "radio.wav"
    with av.open(str(audio), "w") as out:
        stream = out.add_stream("pcm_s16le", rate=8000)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 8000), np.int16), format="s16", layout="mono")
        frame.sample_rate = 8000
        for pkt in stream.encode(frame):
            out.mux(pkt)
        for pkt in stream.encode(None):
            out.mux(pkt)
    vault.put_file(
        audio,
        Capture(
            source_id="bwv-7",
            source_kind=SourceKind.STAFF_DEVICE,
            captured_at=T0,
            captured_end=T0 + dt.timedelta(seconds=1),
        ),
        actor=ACTOR,
    )
    with pytest.raises(InvalidInput, match="audio-only"):
        assemble_clip(vault, "bwv-7", T0, T0 + dt.timedelta(seconds=1), actor=ACTOR, purpose=PURPOSE)
    assert not any(e.action == Action.INGESTED and (e.event.details or {}).get("window")
                   for e in vault.ledger.events(limit=1000))
    assert list(vault.settings.spool_dir.iterdir()) == [] if vault.settings.spool_dir.exists() else True
