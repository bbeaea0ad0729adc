"""The ONVIF replay client's parts (ingest/nvr/) on hand-made packets and answers:
what the two replay servers of test_pull_onvif_replay.py never send (``STAP-A``, a lost
packet, a stream without ONVIF timestamps, an H.265 recording, a garbled answer)."""

from __future__ import annotations

import datetime as dt
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from ingest.errors import NvrError
from ingest.nvr.rtsp_client import (
    NTP_UNIX_OFFSET,
    ONVIF_EXTENSION,
    RtspReplayClient,
    _Depacketiser,
    _video_track,
    clock_range,
    ntp_to_unix_ns,
    parse_rtp,
)

T = dt.datetime(2026, 11, 24, 21, 0, 0, 250_000, tzinfo=dt.UTC)
NS = int(T.timestamp()) * 10**9 + 250_000_000


def rtp(sequence: int, payload: bytes, *, marker: bool = False, timestamp: int = 9000,
        ns: int | None = NS, flags: int = 0x80) -> bytes:
    """An RTP packet, with the ONVIF replay extension when ``ns`` is given."""
    first = 0x90 if ns is not None else 0x80
    header = struct.pack(">BBHII", first, (0x80 if marker else 0) | 96, sequence, timestamp, 1)
    if ns is None:
        return header + payload
    seconds, rest = divmod(ns, 10**9)
    ntp = ((seconds + NTP_UNIX_OFFSET) << 32) | ((rest << 32) // 10**9)
    return header + struct.pack(">HHQBBH", ONVIF_EXTENSION, 3, ntp, flags, 7, 0) + payload


def test_clock_range_is_absolute_utc_with_milliseconds() -> None:
    """``Range: clock=`` as ONVIF servers parse it (RFC 2326 3.7, UTC, ``Z``)."""
    bst = dt.timezone(dt.timedelta(hours=1))
    assert clock_range(T, T.astimezone(bst) + dt.timedelta(minutes=5)) == (
        "clock=20261124T210000.250Z-20261124T210500.250Z")


def test_ntp_times_come_back_to_the_nanosecond() -> None:
    """A server that floors nanoseconds to NTP's 2**-32 s grid: the client rounds them back, so
    frame times (and the gaps between them) are exact."""
    for ns in (NS, NS + 40_000_000, NS + 999_999_999):
        seconds, rest = divmod(ns, 10**9)
        assert ntp_to_unix_ns(((seconds + NTP_UNIX_OFFSET) << 32) | ((rest << 32) // 10**9)) == ns


def test_stap_a_and_fu_a_make_one_keyframe_access_unit() -> None:
    """RFC 6184: parameter sets aggregated in a ``STAP-A``, the IDR slice in ``FU-A`` fragments;
    one access unit comes out at the marker, in Annex B, flagged a keyframe, at the recorded
    time of its extension."""
    sps, pps, idr = b"\x67\x42\xc0\x0d", b"\x68\xce", b"\x65" + bytes(range(200)) * 10
    stap = b"\x18" + struct.pack(">H", len(sps)) + sps + struct.pack(">H", len(pps)) + pps
    body = idr[1:]
    halves = [body[: len(body) // 2], body[len(body) // 2:]]
    fu = [bytes([0x7C, 0x80 | 5]) + halves[0], bytes([0x7C, 0x40 | 5]) + halves[1]]
    depacketiser = _Depacketiser("nvr-x")
    out = []
    for number, payload in enumerate([stap, *fu]):
        out += depacketiser.push(parse_rtp(rtp(number + 1, payload, marker=number == 2), "x"))
    [(ns, data, key, flags)] = out
    assert ns == NS and key and flags & 0x80
    assert data == b"".join(b"\x00\x00\x00\x01" + n for n in (sps, pps, b"\x65" + body))


def test_a_lost_packet_is_a_drop_not_a_damaged_frame() -> None:
    """Over TCP a sequence gap means the server skipped packets: the frame would not decode,
    so it is an NvrError (the replay resumes from the last keyframe), not a silent hole."""
    depacketiser = _Depacketiser("nvr-x")
    depacketiser.push(parse_rtp(rtp(1, b"\x65abc"), "x"))
    with pytest.raises(NvrError, match="RTP packets were lost"):
        depacketiser.push(parse_rtp(rtp(3, b"\x65def", marker=True), "x"))


def test_a_stream_without_onvif_timestamps_is_refused() -> None:
    """Without the 0xABAC extension the frames' recorded times cannot be known: refused,
    saying so, rather than stamped with the time of the transfer."""
    depacketiser = _Depacketiser("nvr-x")
    with pytest.raises(NvrError, match="no ONVIF timestamps"):
        depacketiser.push(parse_rtp(rtp(1, b"\x65abc", marker=True, ns=None), "x"))


def test_an_h265_recording_is_refused_saying_so() -> None:
    """This version replays H.264 only: an H.265 track is refused by name."""
    sdp = ("v=0\r\ns=-\r\nt=0 0\r\na=control:*\r\nm=video 0 RTP/AVP 98\r\n"
           "a=rtpmap:98 H265/90000\r\na=control:track1\r\n")
    with pytest.raises(NvrError, match="H.265"):
        _video_track(sdp, "rtsp://nvr/Rec", "nvr-x")


def test_relative_controls_resolve_against_the_content_base() -> None:
    """RFC 2326 C.1.1: a track's relative ``a=control`` joins the Content-Base; PLAY goes to the
    session URL; ``sprop-parameter-sets`` become the stream's configuration."""
    sdp = ("v=0\r\ns=-\r\nt=0 0\r\na=control:*\r\nm=audio 0 RTP/AVP 0\r\na=control:audio\r\n"
           "m=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
           "a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LADQ==,aM4=\r\n"
           "a=control:video\r\n")
    track = _video_track(sdp, "rtsp://nvr/Rec_0001/", "nvr-x")
    assert track.control == "rtsp://nvr/Rec_0001/video"
    assert track.session_url == "rtsp://nvr/Rec_0001/"
    assert track.config == b"\x00\x00\x00\x01\x67\x42\xc0\x0d\x00\x00\x00\x01\x68\xce"


@pytest.fixture
def garbled() -> Iterator[int]:
    """A server answering any request with an RTSP head claiming a 2 GB body."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(4096)
            connection.sendall(b"RTSP/1.0 200 OK\r\nCSeq: 1\r\nContent-Length: 2000000000\r\n\r\n")
            connection.recv(4096)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def test_an_answer_claiming_a_huge_body_is_refused(garbled: int) -> None:
    """Bad input from the NVR side gets a clear error and no unbounded buffering."""
    client = RtspReplayClient(f"rtsp://127.0.0.1:{garbled}/Rec", user=None, password=None,
                              timeout_s=5, nvr_id="nvr-x", credentials_ref=None)
    client.connect()
    try:
        with pytest.raises(NvrError, match="a body of 2000000000 bytes"):
            client.request("OPTIONS", client.uri)
    finally:
        client.close()
