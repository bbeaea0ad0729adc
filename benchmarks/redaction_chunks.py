"""Benchmark: one long 1080p recording redacted in one pass and in chunks on 1 and 2 workers.

The clip is a 1080p25 street scene like ``still`` in ``benchmarks/redaction.py`` (14 different
real faces walking past a fixed camera, sensor noise, a 1/50 s shutter, x264 crf 26 with a 2 s
keyframe interval, AAC audio): ``--segment`` seconds are drawn, then repeated by stream copy
to ``--seconds`` (default 600: ten minutes), so a long clip costs seconds to make.

Rows, in one run on the same clip:

- ``one pass``: :func:`redaction.redact_video` (the anchor: plan and render concurrently);
- ``chunks, N workers``: :func:`redaction.chunks.plan_chunked` then
  :func:`redaction.chunks.render_chunked`, ``--chunk`` seconds a chunk with ``--overlap``
  seconds planned twice at each border, on N threads of this process (as a render job, or the
  CLI, runs them; on the queue each chunk's planning is a job any worker runs).

Each row: wall seconds, fps (frames / wall seconds of the whole run: decode, detect, encode,
cut and join) and the plan's tracks. Memory and CPU are shared with whatever else runs: the
load average is printed before and after; compare rows of one run, not runs.

Run: ``python benchmarks/redaction_chunks.py [--seconds 600] [--workers 1,2]``. Files go to
``benchmarks/out/`` (git-ignored). Ends with one summary line.

``--queue 1x2,2x1 [--job render|redact] [--pin]``: instead, a job on the job queue (SQLite
Huey, a vault made for the run) drained by P worker processes of T chunks each, after an
anchor: the same job's work (decrypt the recording, redact, store the copy) in this process
without a queue. ``render`` (the default) renders one plan made first (not timed), anchored
by rendering its chunks on threads; its chunk render jobs store their parts as encrypted
intermediates that the parent fetches and joins (:mod:`vault.casework.intermediates`).
``redact`` plans and renders, anchored by one pass.
``--pin`` puts every process, the anchor's included, on a core of its own: P one-core
machines against one, the nearest this two-core host comes to workers on separate machines
(they still share memory bandwidth and the disk).

``--decrypt``: instead, what each chunk job decrypts. The clip is stored in a vault made for
the run (encrypted as any recording), and for each chunk of the layout the bytes it needs are
decrypted as a chunk job does (:func:`api.jobs.fetch_chunk`), against the whole recording
(``Vault.export_file``, what every chunk job did before). One summary line: bytes and seconds,
per chunk and in all. No detection runs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redaction import redact_video  # noqa: E402
from redaction.chunks import chunk_layout, plan_chunked, render_chunked  # noqa: E402
from redaction.plan import RedactionPlan  # noqa: E402
from redaction.synthetic import Face, linear, make_clip, still  # noqa: E402

W, H, FPS = 1920, 1080, 25


def _faces(seconds: float) -> list[Face]:
    rng = np.random.default_rng(13)
    faces = [Face(still(1500, 200), 30)]
    for k in range(13):
        y = rng.uniform(0.25 * H, 0.95 * H)
        size = 22 + 18 * (y - 0.25 * H) / (0.7 * H)
        speed = rng.uniform(40, 110) * size / 30
        xa = rng.uniform(0, W)
        xb = xa + (speed if k % 2 else -speed) * seconds
        faces.append(Face(linear(xa, y, xb, y, seconds), size, mirror=bool(k % 2),
                          identity=k % 100))
    return faces


def make_long(out: Path, seconds: float, segment: float) -> Path:
    """A ``seconds`` long clip: ``segment`` seconds drawn, repeated by stream copy."""
    import imageio_ffmpeg

    seg = out / f"segment-{segment:g}s.mp4"
    if not seg.exists():
        make_clip(seg, _faces(segment), width=W, height=H, fps=FPS, seconds=segment, seed=100,
                  noise=4.0, crf=26, gop=2 * FPS, audio=True, shutter=0.02,
                  background="rocket")
    long = out / f"long-{seconds:g}s.mp4"
    if not long.exists():
        loops = max(0, int(round(seconds / segment)) - 1)
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y",
                        "-stream_loop", str(loops), "-i", str(seg), "-c", "copy",
                        "-t", f"{seconds:g}", str(long)], check=True)
    return long


def decrypt_rows(src: Path, chunk_s: float, overlap_s: float, out: Path) -> str:
    """Decrypt ``src``'s chunks as chunk jobs do, and whole; the summary line."""
    import datetime as dt
    import shutil
    import tempfile

    from api.jobs import fetch_chunk
    from vault import Settings, Vault
    from vault.actors import Actor, Purpose, Role
    from vault.capture import Capture
    from vault.storage.catalog import MediaKind, SourceKind

    actor = Actor(user="bench", role=Role.IG_OFFICER, organisation="Bench")
    purpose = Purpose(purpose="benchmark", reference="BENCH-1")
    layout = chunk_layout(src, chunk_s=chunk_s, overlap_s=overlap_s)
    home = Path(tempfile.mkdtemp(prefix="decrypt-", dir=out))
    try:
        with Vault.init(Settings(home=home)) as vault:
            t = time.perf_counter()
            rec = vault.put_file(src, Capture(
                source_id="bench", source_kind=SourceKind.CCTV, site="Bench",
                captured_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
                media_kind=MediaKind.VIDEO, original_name=src.name), actor=actor)
            print(f"stored {rec.size / 1e6:.1f} MB in {time.perf_counter() - t:.1f} s")
            t = time.perf_counter()
            vault.export_file(rec.id, home / "whole.mp4", actor=actor, purpose=purpose)
            whole_s = time.perf_counter() - t
            (home / "whole.mp4").unlink()
            print(f"  whole recording: {rec.size / 1e6:8.1f} MB {whole_s:6.2f} s (each chunk "
                  "job, before)")
            total_b, total_s = 0, 0.0
            for c in layout.chunks:
                t = time.perf_counter()
                n = fetch_chunk(vault, rec.id, c, home / f"chunk-{c.index}.mp4", actor=actor,
                                purpose=purpose, details={"chunk": c.index})
                took = time.perf_counter() - t
                (home / f"chunk-{c.index}.mp4").unlink()
                total_b, total_s = total_b + n, total_s + took
                print(f"  chunk {c.index}: {n / 1e6:8.1f} MB {took:6.2f} s "
                      f"({len(c.ranges)} ranges)")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    k = len(layout.chunks)
    return (f"summary: decrypt for {k} chunk jobs of {src.name} ({rec.size / 1e6:.0f} MB): "
            f"before {k} x whole = {k * rec.size / 1e6:.0f} MB {k * whole_s:.1f} s; after "
            f"{total_b / 1e6:.0f} MB {total_s:.1f} s (load {os.getloadavg()[0]:.1f} on "
            f"{os.cpu_count()} shared cores)")


_WORKER = """
import os
import sys
from pathlib import Path
if sys.argv[5] != "-":
    os.sched_setaffinity(0, {int(sys.argv[5])})  # a one-core machine of its own
from api.jobs import open_job_queue
from vault import Settings
settings = Settings(home=Path(sys.argv[1]), redaction_chunk_s=float(sys.argv[2]),
                    redaction_chunk_overlap_s=float(sys.argv[6]),
                    redaction_workers=int(sys.argv[3]), spool_path=Path(sys.argv[4]))
consumer = open_job_queue(settings).consumer(workers=1, periodic=False)
Path(sys.argv[4]).mkdir(parents=True, exist_ok=True)
(Path(sys.argv[4]) / "ready").touch()  # imported and connected: the clock may start
consumer.run()
"""


def _queue_run(src: Path, out: Path, *, job: str, chunk_s: float, overlap_s: float,
               processes: int, threads: int, pin: bool, plan: RedactionPlan | None) -> float:
    """Seconds for one ``job`` (render: of ``plan``; redact: plan and render) on the job
    queue of a vault made for the run, drained by ``processes`` worker processes (each on a
    core of its own with ``pin``); with no processes, the same work (decrypt, redact, store)
    in this process by :func:`redaction.redacted_copy.redact_recording`, on ``threads``."""
    import datetime as dt
    import shutil
    import tempfile

    from api.jobs import open_job_queue
    from vault import Settings, Vault
    from vault.actors import Actor, Purpose, Role
    from vault.capture import Capture
    from vault.casework.jobs import JobKind, JobState, get_job, job_statuses
    from vault.storage.catalog import MediaKind, SourceKind

    actor = Actor(user="bench", role=Role.IG_OFFICER, organisation="Bench")
    purpose = Purpose(purpose="benchmark", reference="BENCH-1")
    home = Path(tempfile.mkdtemp(prefix="queue-", dir=out))
    procs: list[subprocess.Popen[bytes]] = []
    cores = sorted(os.sched_getaffinity(0))
    try:
        settings = Settings(home=home, redaction_chunk_s=chunk_s,
                            redaction_chunk_overlap_s=overlap_s, redaction_workers=threads)
        with Vault.init(settings) as vault:
            rec = vault.put_file(src, Capture(
                source_id="bench", source_kind=SourceKind.CCTV, site="Bench",
                captured_at=dt.datetime(2026, 12, 1, tzinfo=dt.UTC),
                media_kind=MediaKind.VIDEO, original_name=src.name), actor=actor)
            if processes == 0:  # the anchor: the same work in this process, no queue
                from redaction.redacted_copy import redact_recording

                everywhere = os.sched_getaffinity(0)
                if pin:
                    os.sched_setaffinity(0, {cores[0]})
                try:
                    t = time.perf_counter()
                    redact_recording(vault, rec.id, actor=actor, purpose=purpose, plan=plan,
                                     chunk_s=chunk_s if plan is not None else 0.0,
                                     overlap_s=overlap_s, workers=threads)
                    return time.perf_counter() - t
                finally:
                    os.sched_setaffinity(0, everywhere)
            for k in range(processes):
                core = str(cores[k % len(cores)]) if pin else "-"
                procs.append(subprocess.Popen(
                    [sys.executable, "-c", _WORKER, str(home), str(chunk_s), str(threads),
                     str(home / f"spool-{k}"), core, str(overlap_s)], cwd=ROOT))
            deadline = time.monotonic() + 120
            while not all((home / f"spool-{k}" / "ready").exists()
                          for k in range(processes)) and time.monotonic() < deadline:
                time.sleep(0.1)
            for k in range(processes):
                (home / f"spool-{k}" / "ready").unlink(missing_ok=True)
            queue = open_job_queue(settings, vault=vault)
            try:
                t = time.perf_counter()
                if job == "render":
                    assert plan is not None
                    row = queue.submit(JobKind.REDACTION_RENDER, actor=actor, purpose=purpose,
                                       params={"recording_ids": [rec.id],
                                               "plan_sha256": plan.sha256()},
                                       plan=plan.to_dict())
                else:
                    row = queue.submit(JobKind.REDACT, actor=actor, purpose=purpose,
                                       params={"recording_ids": [rec.id]})
                # The status alone: the row holds the plan, megabytes of JSON to parse.
                while job_statuses(vault, [row.id])[0].state in (JobState.QUEUED,
                                                                 JobState.RUNNING):
                    time.sleep(0.2)
                took = time.perf_counter() - t
                row = get_job(vault, row.id)
            finally:
                queue.close()
            if row.state != JobState.SUCCEEDED:
                raise SystemExit(f"{job} job {row.state.value}: {row.error}")
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait()
        shutil.rmtree(home, ignore_errors=True)
    return took


def queue_rows(src: Path, chunk_s: float, overlap_s: float, out: Path,
               layouts: list[tuple[int, int]], *, job: str, pin: bool) -> str:
    """The anchor in this process, then ``job`` on the queue with each (processes, threads)
    of ``layouts``; the summary line. With ``pin``, every process (the anchor's included)
    runs on one core of its own: one-core machines, as many as there are processes."""
    n = chunk_layout(src, chunk_s=chunk_s, overlap_s=0).frame_count
    plan = None
    if job == "render":
        t = time.perf_counter()
        plan = plan_chunked(src, chunk_s=chunk_s, overlap_s=overlap_s, workers=2)
        print(f"planned once in {time.perf_counter() - t:.1f} s: {len(plan.tracks)} tracks "
              "(not timed below)", flush=True)
    # The anchor: the same job's work (decrypt, redact, store the copy) in this process:
    # the plan rendered in chunks on threads (render), or one pass (redact).
    threads = 1 if pin else 2
    took = _queue_run(src, out, job=job, chunk_s=chunk_s, overlap_s=overlap_s, processes=0,
                      threads=threads, pin=pin, plan=plan)
    label = (f"here, no queue, {threads} thread{'s' if threads > 1 else ''}" if job == "render"
             else "here, no queue, one pass") + (" (1 core)" if pin else "")
    rows: list[tuple[str, float]] = [(label, took)]
    print(f"  {label:32s} {took:8.1f} s {n / took:6.1f} fps", flush=True)
    for processes, threads in layouts:
        took = _queue_run(src, out, job=job, chunk_s=chunk_s, overlap_s=overlap_s,
                          processes=processes, threads=threads, pin=pin, plan=plan)
        label = (f"queue, {processes} process{'es' if processes > 1 else ''} x {threads}"
                 + (" (1 core each)" if pin else ""))
        rows.append((label, took))
        print(f"  {label:32s} {took:8.1f} s {n / took:6.1f} fps", flush=True)
    summary = "; ".join(f"{label} {wall:.0f} s {n / wall:.1f} fps" for label, wall in rows)
    return (f"summary: {job} of {src.name} in chunks of {chunk_s:g} s: {summary} (load "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} shared cores)")


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--seconds", type=float, default=600.0, help="length of the long clip")
    ap.add_argument("--segment", type=float, default=20.0, help="seconds drawn, then repeated")
    ap.add_argument("--chunk", type=float, default=120.0, help="chunk length, seconds")
    ap.add_argument("--overlap", type=float, default=2.0, help="overlap at borders, seconds")
    ap.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    ap.add_argument("--skip-one-pass", action="store_true", help="no one-pass anchor row")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "out")
    ap.add_argument("--decrypt", action="store_true",
                    help="measure what chunk jobs decrypt (no detection)")
    ap.add_argument("--queue", default=None, metavar="PxT,...",
                    help="measure a job on the queue with P worker processes of T chunks each "
                         "(e.g. 1x2,2x1), after an anchor here")
    ap.add_argument("--job", choices=["render", "redact"], default="render",
                    help="with --queue: render a plan made first, or plan and render")
    ap.add_argument("--pin", action="store_true",
                    help="with --queue: every process on a core of its own (one-core machines)")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.queue:
        layouts = [(int(p), int(t)) for p, t in
                   (x.split("x") for x in args.queue.split(",") if x)]
        print(queue_rows(make_long(args.out, args.seconds, args.segment), args.chunk,
                         args.overlap, args.out, layouts, job=args.job, pin=args.pin))
        return
    if args.decrypt:
        print(decrypt_rows(make_long(args.out, args.seconds, args.segment), args.chunk,
                           args.overlap, args.out))
        return
    load0 = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores, load average {load0[0]:.2f} {load0[1]:.2f} "
          f"{load0[2]:.2f} (shared: other work runs beside this)")
    src = make_long(args.out, args.seconds, args.segment)
    layout = chunk_layout(src, chunk_s=args.chunk, overlap_s=args.overlap)
    n = layout.frame_count
    print(f"clip: {W}x{H} {FPS} fps, {args.seconds:g} s, {n} frames; "
          f"{len(layout.chunks)} chunks of ~{args.chunk:g} s, overlap {args.overlap:g} s")
    rows: list[tuple[str, float, int]] = []
    if not args.skip_one_pass:
        t = time.perf_counter()
        plan, _ = redact_video(src, args.out / "long-one-pass.mp4")
        rows.append(("one pass", time.perf_counter() - t, len(plan.tracks)))
        print(f"  {rows[-1][0]:20s} {rows[-1][1]:8.1f} s {n / rows[-1][1]:6.1f} fps "
              f"{rows[-1][2]:4d} tracks", flush=True)
    for workers in [int(w) for w in args.workers.split(",") if w]:
        t = time.perf_counter()
        plan = plan_chunked(src, chunk_s=args.chunk, overlap_s=args.overlap, workers=workers)
        planned = time.perf_counter() - t
        render_chunked(src, plan, args.out / f"long-chunks-{workers}.mp4", chunk_s=args.chunk,
                       workers=workers)
        rows.append((f"chunks, {workers} worker{'s' if workers > 1 else ''}",
                     time.perf_counter() - t, len(plan.tracks)))
        print(f"  {rows[-1][0]:20s} {rows[-1][1]:8.1f} s {n / rows[-1][1]:6.1f} fps "
              f"{rows[-1][2]:4d} tracks (plan {planned:.1f} s)", flush=True)
    load1 = os.getloadavg()
    print(f"load average {load1[0]:.2f} {load1[1]:.2f} {load1[2]:.2f} at end")
    summary = "; ".join(f"{label} {wall:.0f} s {n / wall:.1f} fps" for label, wall, _ in rows)
    print(f"summary: {args.seconds:g} s 1080p, {len(layout.chunks)} chunks: {summary} "
          f"(load {load0[0]:.1f}-{load1[0]:.1f} on {os.cpu_count()} shared cores)")


if __name__ == "__main__":
    main()
