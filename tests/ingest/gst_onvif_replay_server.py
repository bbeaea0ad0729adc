"""GStreamer's ONVIF RTSP server replaying a recording, for the pull tests (run by the system
python, which has GStreamer's introspection bindings: ``/usr/bin/python3 THIS FRAMES PORT USER
PASSWORD TOKEN``; tests/ingest/test_pull_onvif_gstreamer.py starts it).

The RTSP side is GStreamer's own (gst-rtsp-server 1.22): ``RTSPOnvifServer`` and
``RTSPOnvifMediaFactory`` answer ``Require: onvif-replay``, parse ``Range: clock=``, grant
``Rate-Control: no``, and authenticate with RTSP Digest (``RTSPAuth``); ``rtph264pay`` makes the
RTP packets and ``rtponviftimestamp`` writes the 0xABAC replay header extension (NTP time, C, D,
E, T flags). The archive is ours, as in upstream's ``examples/test-onvif-server.c``: an
``appsrc`` that answers each seek from the recording's frames (FRAMES: records of a recorded
time in Unix ns, a keyframe flag, a gap-before flag and the H.264 access unit in Annex B,
written by the test from ffmpeg-made MP4 files; this python has no PyAV).

Two things make GStreamer's replay keep the first keyframe, the prototype's loss:

1. A seek to ``P`` (ns since 1900, how gst-rtsp-server maps ``clock=``) starts at the keyframe
   at or before ``P`` (the clean point, as ONVIF asks); that keyframe and the frames after it
   up to ``P`` are given the PTS ``P``, so no buffer precedes the segment (a sink drops
   buffers before the segment start: the prototype's lost first frame) and the segment's stop
   still falls where the range ends.
2. The NTP time in the header extension is the frame's *recorded* time, from a
   ``timestamp/x-unix`` reference timestamp meta on each buffer
   (``use-reference-timestamps``), not from the shifted PTS.
"""

from __future__ import annotations

import struct
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer

NTP_UNIX_OFFSET_NS = 2_208_988_800 * Gst.SECOND
_RECORD = struct.Struct(">qBBI")  # unix ns, keyframe, gap before, length


def load(path: str) -> list[tuple[int, bool, bool, bytes]]:
    frames = []
    with open(path, "rb") as source:
        while head := source.read(_RECORD.size):
            ns, key, gap, length = _RECORD.unpack(head)
            frames.append((ns, bool(key), bool(gap), source.read(length)))
    return frames


class Archive:
    """Feeds one media's appsrc from the frames (see the module docstring)."""

    def __init__(self, frames: list[tuple[int, bool, bool, bytes]], appsrc: Gst.Element) -> None:
        self.frames = frames
        self.appsrc = appsrc
        self.next = 0
        self.floor = 0  # no PTS before the segment's start
        self.unix = Gst.Caps.from_string("timestamp/x-unix")
        appsrc.connect("need-data", self.need_data)
        appsrc.connect("seek-data", self.seek_data)

    def seek_data(self, _src: Gst.Element, position: int) -> bool:
        unix = position - NTP_UNIX_OFFSET_NS
        first = next((i for i, f in enumerate(self.frames) if f[0] >= unix), len(self.frames))
        keys = [i for i in range(first + 1) if i < len(self.frames) and self.frames[i][1]
                and self.frames[i][0] <= unix]
        if keys and not any(f[2] for f in self.frames[keys[-1] + 1:first + 1]):
            first = keys[-1]  # 1. the clean point at or before the start
        self.next, self.floor = first, position
        return True

    def need_data(self, src: Gst.Element, _length: int) -> None:
        if self.next >= len(self.frames):
            src.emit("end-of-stream")
            return
        ns, key, gap, data = self.frames[self.next]
        self.next += 1
        buffer = Gst.Buffer.new_wrapped(data)
        buffer.pts = buffer.dts = max(ns + NTP_UNIX_OFFSET_NS, self.floor)
        buffer.duration = 40 * Gst.MSECOND
        if not key:
            buffer.set_flags(Gst.BufferFlags.DELTA_UNIT)
        if gap:
            buffer.set_flags(Gst.BufferFlags.DISCONT)
        # 2. the recorded time, whatever the PTS
        buffer.add_reference_timestamp_meta(self.unix, ns, Gst.CLOCK_TIME_NONE)
        src.emit("push-buffer", buffer)


def main() -> None:
    frames_path, port, user, password, token = sys.argv[1:6]
    Gst.init(None)
    frames = load(frames_path)
    server = GstRtspServer.RTSPOnvifServer.new()
    server.set_address("127.0.0.1")
    server.set_service(port)

    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    role = GstRtspServer.RTSPToken.new()
    role.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "replayer")
    auth.add_digest(user, password, role)
    server.set_auth(auth)

    factory = GstRtspServer.RTSPOnvifMediaFactory.new()
    factory.set_launch(
        "( appsrc name=archive format=time stream-type=seekable is-live=false "
        "caps=video/x-h264,stream-format=byte-stream,alignment=au "
        "! h264parse config-interval=-1 ! rtph264pay pt=96 "
        "! rtponviftimestamp name=pay0 use-reference-timestamps=true set-e-bit=true "
        "set-t-bit=true drop-out-of-segment=false )")
    factory.set_shared(False)
    factory.set_replay_support(True)  # answers Require: onvif-replay
    # What new() should have set in 1.22 (it leaves GstRTSPMedia, and construct() refuses it).
    factory.set_media_gtype(GstRtspServer.RTSPOnvifMedia.__gtype__)
    factory.add_role_from_structure(Gst.Structure.new_from_string(
        "replayer, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"))
    archives: list[Archive] = []

    def configure(_factory: object, media: GstRtspServer.RTSPMedia) -> None:
        archives.append(Archive(frames, media.get_element().get_by_name("archive")))

    factory.connect("media-configure", configure)
    server.get_mount_points().add_factory(f"/{token}", factory)
    server.attach(None)
    print("ready", flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
