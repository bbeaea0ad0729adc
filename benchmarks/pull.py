"""Pull rate from a loopback NVR (mediamtx's recorder and playback server, or GStreamer's ONVIF
RTSP server replaying recording files) beside fetching and copying the same bytes, in the same
run.

    python benchmarks/pull.py                    # 20 s of 640x360 noisy video at ~6 Mbit/s
    python benchmarks/pull.py --seconds 60 --bitrate 12M --piece-seconds 10
    python benchmarks/pull.py --nvr onvif        # ONVIF replay over RTSP (Rate-Control: no)

The NVR records a real stream first (published in real time, so this takes ``--seconds``).
Then, over the same window:

- ``copy``: a plain file copy of the footage as the NVR serves it (the floor any pull pays to
  land the bytes once);
- ``fetch``: ``GET /get`` of the window to a file, nothing else (the NVR's serving rate);
- ``pull``: :func:`ingest.pull.pull` into a fresh vault: list, fetch in pieces, spool, probe,
  hash + encrypt + store + catalog + custody, verify by reading back, one ``ingest.pull`` event.

With ``--nvr onvif`` the NVR is GStreamer's ONVIF RTSP server (tests/ingest/
gst_onvif_replay_server.py, run by a python with GStreamer's bindings) over recording files of
10 s made by ffmpeg (not in real time), and ``fetch`` is the replay alone: ``Require:
onvif-replay``, ``Range: clock``, frames journalled and muxed to MP4 (ingest/nvr/replay.py).

A pull writes the bytes twice (spool, then the encrypted vault copy) and reads them twice
(probe/store, then the verifying read-back), so it cannot reach the copy rate; the target is a
pull at >= 25 % of the plain fetch. Ends with one summary line.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ingest._ffmpeg import die_with_parent, ffmpeg_exe  # noqa: E402
from ingest.config import AgentsFile  # noqa: E402
from ingest.pull import pull  # noqa: E402
from tests.ingest.conftest import find_mediamtx  # noqa: E402
from tests.ingest.nvr_servers import PASSWORD, USER, MediamtxNvrServer  # noqa: E402
from vault.actors import Actor  # noqa: E402
from vault.config import Settings  # noqa: E402
from vault.vault import Vault  # noqa: E402

MB = 1_000_000


def publish(server: MediamtxNvrServer, seconds: float, bitrate: str) -> None:
    """Publish ``seconds`` of noisy video (incompressible enough to hold ``bitrate``)."""
    subprocess.run(
        [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", f"testsrc=size=640x360:rate=25:duration={seconds}",
            "-f", "lavfi", "-i", f"sine=frequency=440:sample_rate=16000:duration={seconds}",
            "-vf", "noise=alls=30:allf=t", "-c:v", "libx264", "-preset", "ultrafast",
            "-b:v", bitrate, "-maxrate", bitrate, "-bufsize", bitrate, "-g", "25",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-t", str(seconds),
            "-f", "rtsp", "-rtsp_transport", "tcp", f"rtsp://127.0.0.1:{server.rtsp_port}/cam1",
        ],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=seconds + 60, check=True,
        preexec_fn=die_with_parent,
    )


def fetch(url: str, start: dt.datetime, end: dt.datetime, out: Path) -> tuple[float, int]:
    params = {"path": "cam1", "start": start.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
              "duration": f"{(end - start).total_seconds():.6f}"}
    began = time.perf_counter()
    size = 0
    with httpx.stream("GET", f"{url}/get", params=params, auth=(USER, PASSWORD),
                      timeout=60) as response, out.open("wb") as f:
        response.raise_for_status()
        for chunk in response.iter_bytes():
            f.write(chunk)
            size += len(chunk)
        f.flush()
        os.fsync(f.fileno())
    return time.perf_counter() - began, size


def plain_copy(src: Path, dst: Path) -> float:
    began = time.perf_counter()
    with src.open("rb") as a, dst.open("wb") as b:
        shutil.copyfileobj(a, b, 1 << 20)
        b.flush()
        os.fsync(b.fileno())
    return time.perf_counter() - began


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="Footage recorded.")
    parser.add_argument("--bitrate", default="6M", help="Video bitrate published.")
    parser.add_argument("--piece-seconds", type=float, default=300.0)
    parser.add_argument("--repeat", type=int, default=3, help="Best of this many runs.")
    parser.add_argument("--nvr", choices=("mediamtx", "onvif"), default="mediamtx")
    args = parser.parse_args()
    if args.nvr == "onvif":
        return main_onvif(args)
    binary = find_mediamtx()
    if binary is None:
        print("mediamtx not found: run scripts/ensure-rtsp.sh", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="pull-bench-") as tmp_name:
        tmp = Path(tmp_name)
        server = MediamtxNvrServer(binary=binary, workdir=tmp / "nvr", segment_s=10.0)
        server.workdir.mkdir()
        server.start()
        try:
            print(f"recording {args.seconds:g} s at {args.bitrate}bit/s on the NVR...")
            publish(server, args.seconds, args.bitrate)
            [(start, end)] = server.listing()
            start, end = start + dt.timedelta(seconds=0.5), end - dt.timedelta(seconds=0.5)
            os.environ["BENCH_NVR_CREDENTIALS"] = f"{USER}:{PASSWORD}"
            agents = AgentsFile.from_dict({
                "agent": {"name": "bench"},
                "nvrs": [{"id": "nvr", "kind": "mediamtx", "site": "Bench", "url": server.url,
                          "credentials": "env:BENCH_NVR_CREDENTIALS",
                          "cameras": {"cam": "cam1"}, "piece_seconds": args.piece_seconds}],
            })
            fetches, copies, pulls = [], [], []
            size = 0
            for run in range(args.repeat):
                os.sync()
                seconds, size = fetch(server.url, start, end, tmp / f"fetched-{run}.mp4")
                fetches.append(seconds)
                os.sync()
                copies.append(plain_copy(tmp / f"fetched-{run}.mp4", tmp / f"copy-{run}.mp4"))
                settings = Settings(home=tmp / f"vault-{run}")
                with Vault.init(settings) as vault:
                    os.sync()
                    began = time.perf_counter()
                    report = pull(vault, agents, nvr_id="nvr", camera="cam", start=start,
                                  end=end, requested_by=Actor.local_operator(),
                                  spool_dir=tmp / f"spool-{run}")
                    pulls.append(time.perf_counter() - began)
                    pulled = sum(p.size for p in report.pieces)
                    assert report.state == "complete", report.to_dict()
                    if len(report.pieces) == 1:
                        digest = hashlib.sha256((tmp / f"fetched-{run}.mp4").read_bytes())
                        assert report.pieces[0].sha256 == digest.hexdigest()
        finally:
            server.stop()
    best = {"copy": min(copies), "fetch": min(fetches), "pull": min(pulls)}
    print(f"window {(end - start).total_seconds():.1f} s, {size / MB:.1f} MB as the NVR serves "
          f"it; pulled {pulled / MB:.1f} MB in {len(report.pieces)} piece(s); best of "
          f"{args.repeat}")
    for name, seconds in best.items():
        print(f"  {name:<6} {seconds:7.3f} s  {size / MB / seconds:8.1f} MB/s")
    pull_rate, fetch_rate, copy_rate = (size / MB / best[k] for k in ("pull", "fetch", "copy"))
    print(f"summary: pull {pull_rate:.1f} MB/s from a loopback NVR = {pull_rate / fetch_rate:.0%}"
          f" of fetching the same bytes ({fetch_rate:.1f} MB/s; target 25%) and "
          f"{pull_rate / copy_rate:.0%} of copying them ({copy_rate:.1f} MB/s)")
    return 0


def record_files(directory: Path, seconds: float, bitrate: str) -> list[tuple[dt.datetime, Path]]:
    """Recording files of 10 s each of noisy 640x360 H.264 at ``bitrate``, ending an hour ago."""
    directory.mkdir(parents=True)
    first = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1, seconds=seconds)).replace(
        microsecond=0)
    files, done = [], 0.0
    while done < seconds:
        length = min(10.0, seconds - done)
        path = directory / f"rec-{len(files)}.mp4"
        subprocess.run(
            [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
             f"testsrc=size=640x360:rate=25:duration={length}", "-vf", "noise=alls=30:allf=t",
             "-c:v", "libx264", "-preset", "ultrafast", "-bf", "0", "-b:v", bitrate,
             "-maxrate", bitrate, "-bufsize", bitrate, "-g", "25", "-pix_fmt", "yuv420p",
             str(path)],
            stdin=subprocess.DEVNULL, capture_output=True, check=True,
        )
        files.append((first + dt.timedelta(seconds=done), path))
        done += length
    return files


def main_onvif(args: argparse.Namespace) -> int:
    """The ``--nvr onvif`` comparison (see the module docstring)."""
    from ingest.config import AgentOptions, OnvifNvrConfig
    from ingest.nvr.replay import RtspReplayClient, mux, replay_window
    from tests.ingest.onvif_replay_server import GstOnvifReplayServer, find_gst_python
    from tests.ingest.onvif_server import OnvifNvrServer

    python = find_gst_python()
    if python is None:
        print("GStreamer's RTSP server is not importable (python3-gi, "
              "gir1.2-gst-rtsp-server-1.0)", file=sys.stderr)
        return 2
    user, password = "bench", "bench-secret"
    with tempfile.TemporaryDirectory(prefix="pull-bench-") as tmp_name:
        tmp = Path(tmp_name)
        print(f"making {args.seconds:g} s of recording files at {args.bitrate}bit/s...")
        files = record_files(tmp / "recording", args.seconds, args.bitrate)
        rtsp = GstOnvifReplayServer(python, "Rec_0001", files, user, password, tmp)
        rtsp.start()
        start = files[0][0] + dt.timedelta(seconds=0.5)
        end = files[0][0] + dt.timedelta(seconds=args.seconds - 0.5)
        soap = OnvifNvrServer(user, password, {"Rec_0001": (files[0][0], end)},
                              replay_base=rtsp.url)
        soap.start()
        os.environ["BENCH_NVR_CREDENTIALS"] = f"{user}:{password}"
        agents = AgentsFile(agent=AgentOptions(name="bench"), nvrs=[OnvifNvrConfig(
            id="nvr", kind="onvif", site="Bench", url=soap.url,
            credentials="env:BENCH_NVR_CREDENTIALS", cameras={"cam": "Rec_0001"},
            piece_seconds=args.piece_seconds)])

        def client() -> RtspReplayClient:
            return RtspReplayClient(f"{rtsp.url}/Rec_0001", user=user, password=password,
                                    timeout_s=30, nvr_id="nvr", credentials_ref=None)

        fetches, copies, pulls = [], [], []
        size = 0
        try:
            for run in range(args.repeat):
                os.sync()
                out = tmp / f"replayed-{run}.mp4"
                began = time.perf_counter()
                journal, _ = replay_window(client, start, end, tmp / f"j-{run}.frames",
                                           max_attempts=1, tell=lambda *_: None)
                try:
                    mux(journal, out, start, end)
                finally:
                    journal.close()
                fetches.append(time.perf_counter() - began)
                size = out.stat().st_size
                os.sync()
                copies.append(plain_copy(out, tmp / f"copy-{run}.mp4"))
                with Vault.init(Settings(home=tmp / f"vault-{run}")) as vault:
                    os.sync()
                    began = time.perf_counter()
                    report = pull(vault, agents, nvr_id="nvr", camera="cam", start=start,
                                  end=end, requested_by=Actor.local_operator(),
                                  spool_dir=tmp / f"spool-{run}")
                    pulls.append(time.perf_counter() - began)
                    assert report.state == "complete", report.to_dict()
                    if len(report.pieces) == 1:
                        digest = hashlib.sha256(out.read_bytes()).hexdigest()
                        assert report.pieces[0].sha256 == digest
        finally:
            soap.stop()
            rtsp.stop()
    best = {"copy": min(copies), "replay": min(fetches), "pull": min(pulls)}
    print(f"window {(end - start).total_seconds():.1f} s, {size / MB:.1f} MB as replayed and "
          f"saved; {len(report.pieces)} piece(s); best of {args.repeat}")
    for name, seconds in best.items():
        print(f"  {name:<6} {seconds:7.3f} s  {size / MB / seconds:8.1f} MB/s")
    pull_rate, replay_rate, copy_rate = (size / MB / best[k] for k in ("pull", "replay", "copy"))
    print(f"summary: pull {pull_rate:.1f} MB/s by ONVIF replay from GStreamer's RTSP server = "
          f"{pull_rate / replay_rate:.0%} of the replay alone ({replay_rate:.1f} MB/s; target "
          f"25%) and {pull_rate / copy_rate:.0%} of copying the same bytes "
          f"({copy_rate:.1f} MB/s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
