"""Upload: one-shot ingest of files that arrive by other routes (``evidence-vault ingest file``).

Handed-in phone video, NVR clips exported to a USB stick: each file is copied into the spool
(the original is never touched), then goes through the same pipeline as agent footage. The
upload spool is resumable like the agent's: files a killed run left half-way are finished by
the next run before it starts on new ones. Running it twice on the same file gives the same
recording (reported as a duplicate).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vault.errors import VaultError
from vault.vault import Vault

from .config import UploadSourceConfig
from .errors import SpoolError
from .pipeline import Pipeline
from .sources import Source, SourceContext
from .spool import ItemState, Spool, SpoolItem


class UploadSource(Source):
    """Files handed in by a person; :meth:`submit` spools one."""

    kind = "upload"
    config: UploadSourceConfig

    def run(self) -> None:
        """Nothing to watch: uploads arrive through :meth:`submit`."""
        self.set_status(state="ready")

    def submit(
        self,
        path: Path,
        *,
        device: str | None = None,
        captured_at: dt.datetime | None = None,
        device_time: dt.datetime | None = None,
        note: str | None = None,
    ) -> SpoolItem:
        """Copy ``path`` into the spool; return its item (an unfinished earlier one if any).

        Raises SpoolError if the file cannot be read.
        """
        path = Path(path).expanduser().resolve()
        try:
            st = path.stat()
        except OSError as error:
            raise SpoolError(f"cannot read {path}: {error.strerror}") from None
        if not path.is_file():
            raise SpoolError(f"{path} is not a file")
        fingerprint = f"{st.st_size}:{st.st_mtime_ns}"
        origin = str(path)
        earlier = self.context.spool.find(self.id, origin)
        if (
            earlier is not None
            and not earlier.state.terminal
            and earlier.fingerprint == fingerprint
        ):
            return earlier
        meta: dict[str, Any] = {
            "site": self.config.site,
            "mtime": dt.datetime.fromtimestamp(st.st_mtime, dt.timezone.utc).isoformat(),
        }
        if device:
            meta["device"] = device
        if note:
            meta["note"] = note
        item = self.context.spool.add(
            path,
            source=self.id,
            origin=origin,
            vault_source=device or self.id,
            source_kind=self.vault_kind,
            mode="copy",
            received_at=self.context.clock(),
            fingerprint=fingerprint,
            device_time=device_time,
            captured_start=captured_at,
            time_basis="stated by the uploader" if captured_at else None,
            meta=meta,
        )
        self.count_file(st.st_size)
        return item


@dataclass(frozen=True)
class UploadResult:
    """What happened to one uploaded file."""

    path: str
    item: SpoolItem | None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.item is not None and self.item.state == ItemState.ACKNOWLEDGED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary for the CLI."""
        item = self.item
        out: dict[str, Any] = {"path": self.path, "ok": self.ok, "error": self.error}
        if item is not None:
            out.update(
                state=item.state.value,
                recording_id=item.recording_id,
                sha256=item.sha256,
                size=item.size,
                duplicate=item.duplicate,
                source=item.vault_source,
                captured_start=item.captured_start.isoformat() if item.captured_start else None,
                captured_end=item.captured_end.isoformat() if item.captured_end else None,
                clock=(item.media_info or {}).get("clock"),
            )
            if item.state == ItemState.REJECTED:
                out["error"] = item.error
        return out


def ingest_files(
    vault: Vault,
    paths: Iterable[Path],
    *,
    config: UploadSourceConfig,
    spool_dir: Path,
    agent_name: str,
    clock_bound_s: float = 2.0,
    device: str | None = None,
    captured_at: dt.datetime | None = None,
    device_time: dt.datetime | None = None,
    workers: int = 2,
    progress: Callable[[UploadResult], None] | None = None,
    min_free_bytes: int = 0,
) -> list[UploadResult]:
    """Ingest ``paths`` through the pipeline; return one result per path (in order).

    Unfinished items from an earlier, interrupted run on this spool are finished first (they
    are not in the returned list). A file whose spool copy would take the spool disk below
    ``min_free_bytes`` is not taken (its result says so; the original is untouched). Raises
    SpoolLocked when another upload holds the spool.
    """
    with Spool(spool_dir, min_free_bytes=min_free_bytes) as spool:
        spool.recover()
        context = SourceContext(spool=spool)
        source = UploadSource(config, context)
        pipeline = Pipeline(
            vault,
            spool,
            agent_name=agent_name,
            clock_bound_s=clock_bound_s,
            sources={source.id: source},
        )
        for leftover in spool.pending():
            try:
                pipeline.process(leftover)
            except VaultError:
                pass  # reported again when that file is uploaded again

        def one(path: Path) -> UploadResult:
            try:
                item = source.submit(
                    path, device=device, captured_at=captured_at, device_time=device_time
                )
                item = pipeline.process(item)
                result = UploadResult(path=str(path), item=item)
            except VaultError as error:
                result = UploadResult(path=str(path), item=None, error=str(error))
            if progress is not None:
                progress(result)
            return result

        paths = [Path(p) for p in paths]
        with ThreadPoolExecutor(
            max_workers=max(1, min(workers, len(paths) or 1, os.cpu_count() or 1))
        ) as pool:
            return list(pool.map(one, paths))


__all__ = ["UploadResult", "UploadSource", "ingest_files"]
