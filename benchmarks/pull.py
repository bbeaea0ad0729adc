"""Pull rate from a loopback NVR (mediamtx's recorder and playback server) beside fetching and
copying the same bytes, in the same run.

    python benchmarks/pull.py                    # 20 s of 640x360 noisy video at ~6 Mbit/s
    python benchmarks/pull.py --seconds 60 --bitrate 12M --piece-seconds 10

The NVR records a real stream first (published in real time, so this takes ``--seconds``).
Then, over the same window:

- ``copy``: a plain file copy of the footage as the NVR serves it (the floor any pull pays to
  land the bytes once);
- ``fetch``: ``GET /get`` of the window to a file, nothing else (the NVR's serving rate);
- ``pull``: :func:`ingest.pull.pull` into a fresh vault: list, fetch in pieces, spool, probe,
  hash + encrypt + store + catalog + custody, verify by reading back, one ``ingest.pull`` event.

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
from vault.access import Actor  # noqa: E402
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
    args = parser.parse_args()
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


if __name__ == "__main__":
    raise SystemExit(main())
