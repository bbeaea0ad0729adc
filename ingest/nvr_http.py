"""NVR clip export over HTTP: poll an export listing, download new clips with resume.

The export endpoint (``url`` in the agents file) answers ``GET`` with JSON::

    {
      "server_time": "2026-11-25T15:00:00Z",          # the NVR's clock (optional)
      "clips": [
        {"id": "c-0042", "camera": "cam-03",
         "start": "2026-11-25T14:32:00Z", "end": "2026-11-25T14:33:00Z",
         "url": "/exports/c-0042.mp4",                 # absolute, or relative to the listing
         "size": 12345678,                             # optional
         "sha256": "9f86d0..."}                        # optional
      ]
    }

Most NVRs need a small adapter to speak this (a reverse proxy or a script); the agent side stays
the same. Each clip is downloaded once (the spool journal remembers clip ids), with HTTP Range
resume: a dropped connection continues from the bytes already on disk, guarded by ``If-Range``
with the clip's ETag so a changed clip restarts from zero. The download is checked against the
listing's ``size`` and ``sha256`` and against a ``Repr-Digest``/``Digest`` SHA-256 header where
the NVR sends one; a mismatch discards the download and tries again. ``server_time`` is the
NVR's stated clock for the device-clock check.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from .config import NvrHttpSourceConfig
from .errors import ChecksumMismatch, SourceError, SpoolError
from .sources import Source, SourceContext

_CHUNK = 1 << 20
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def _parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed.astimezone(dt.timezone.utc) if parsed.tzinfo else None


def _header_sha256(headers: httpx.Headers) -> str | None:
    """The SHA-256 a response states in Repr-Digest (RFC 9530) or Digest (RFC 3230), as hex."""
    repr_digest = headers.get("repr-digest")
    if repr_digest:
        match = re.search(r"sha-256=:([A-Za-z0-9+/=]+):", repr_digest)
        if match:
            return base64.b64decode(match.group(1)).hex()
    digest = headers.get("digest")
    if digest:
        match = re.search(r"(?i)sha-256=([A-Za-z0-9+/=]+)", digest)
        if match:
            return base64.b64decode(match.group(1)).hex()
    return None


class NvrHttpSource(Source):
    """Polls an NVR export listing; see the module docstring."""

    kind = "nvr_http"
    config: NvrHttpSourceConfig

    def __init__(self, config: NvrHttpSourceConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self._failures: dict[str, int] = {}
        self._client: httpx.Client | None = None

    def _http(self) -> httpx.Client:
        if self._client is None:
            headers: dict[str, str] = {}
            auth: httpx.BasicAuth | None = None
            secret = self.config.secret()
            if secret is not None:
                value = secret.get_secret_value()
                if self.config.auth == "bearer":
                    headers["Authorization"] = f"Bearer {value}"
                else:
                    user, _, password = value.partition(":")
                    auth = httpx.BasicAuth(user, password)
            self._client = httpx.Client(
                headers=headers,
                auth=auth,
                timeout=self.config.timeout_s,
                verify=self.config.verify_tls,
                follow_redirects=True,
            )
        return self._client

    # -- polling -----------------------------------------------------------------------------

    def poll_once(self) -> int:
        """Fetch the listing once and download every new clip; return how many were spooled.

        Raises SourceError when the listing cannot be fetched or read.
        """
        try:
            response = self._http().get(self.config.url)
            received_at = self.context.clock()
            response.raise_for_status()
            listing = response.json()
        except (httpx.HTTPError, ValueError) as error:
            raise SourceError(
                f"{self.id}: export listing failed: {error}", source_id=self.id
            ) from None
        if not isinstance(listing, dict) or not isinstance(listing.get("clips"), list):
            raise SourceError(f"{self.id}: export listing has no 'clips' list", source_id=self.id)
        server_time = _parse_time(listing.get("server_time"))
        spooled = 0
        for clip in listing["clips"]:
            if self.context.stop.is_set():
                break
            if not isinstance(clip, dict) or not clip.get("id") or not clip.get("url"):
                self.context.event(
                    self.id, "error", f"listing entry without id/url ignored: {clip!r:.200}"
                )
                continue
            clip_id = str(clip["id"])
            if self.context.spool.find(self.id, clip_id) is not None:
                continue  # downloaded before (the journal keeps every clip id)
            try:
                if self._download(clip, server_time=server_time, received_at=received_at):
                    spooled += 1
                    self._failures.pop(clip_id, None)
            except (SourceError, SpoolError) as error:
                n = self._failures[clip_id] = self._failures.get(clip_id, 0) + 1
                self.context.event(
                    self.id, "error", f"clip {clip_id}: {error} (attempt {n})", clip=clip_id
                )
                if n >= self.config.max_attempts:
                    self.set_status(
                        last_error=f"clip {clip_id} failing after {n} attempts: {error}"
                    )
        return spooled

    def _partial_paths(self, clip_id: str) -> tuple[Path, Path]:
        stem = f"{_SAFE.sub('_', self.id)}-{_SAFE.sub('_', clip_id)}"[:200]
        base = self.context.spool.partial_dir
        return base / f"{stem}.part", base / f"{stem}.json"

    def _download(
        self, clip: dict[str, Any], *, server_time: dt.datetime | None, received_at: dt.datetime
    ) -> bool:
        clip_id = str(clip["id"])
        url = urljoin(self.config.url, str(clip["url"]))
        expected_size = clip.get("size") if isinstance(clip.get("size"), int) else None
        expected_sha = str(clip["sha256"]).lower() if clip.get("sha256") else None
        if expected_size is not None and not self.wait_for_room(expected_size):
            return False
        part, state_file = self._partial_paths(clip_id)
        state: dict[str, Any] = {}
        if part.exists() and state_file.exists():
            try:
                state = json.loads(state_file.read_text())
            except ValueError:
                state = {}
        if state.get("url") != url:
            part.unlink(missing_ok=True)
            state = {"url": url}
        have = part.stat().st_size if part.exists() else 0
        headers = {}
        if have:
            headers["Range"] = f"bytes={have}-"
            if state.get("etag"):
                headers["If-Range"] = state["etag"]
        self.set_status(state=f"downloading {clip_id}")
        try:
            with self._http().stream("GET", url, headers=headers) as response:
                if response.status_code == 416 and have and expected_size == have:
                    pass  # already complete
                elif response.status_code == 206 and have:
                    self._append(response, part, state, state_file, mode="ab")
                elif response.status_code == 200:
                    self._append(response, part, state, state_file, mode="wb")
                else:
                    response.raise_for_status()
                    raise SourceError(
                        f"unexpected HTTP {response.status_code} for {url}", source_id=self.id
                    )
                header_sha = _header_sha256(response.headers)
                total = _content_total(response)
        except httpx.HTTPError as error:
            raise SourceError(
                f"download of {url} interrupted: {error}", source_id=self.id
            ) from None
        # Checks, numbered: 1. size, 2. the listing's SHA-256, 3. the header's SHA-256.
        size = part.stat().st_size
        for name, want in (("listing", expected_size), ("Content-Range/Length", total)):
            if want is not None and size != want:
                if size > want:
                    part.unlink(missing_ok=True)
                raise SourceError(
                    f"clip {clip_id}: {size} bytes, the {name} says {want}", source_id=self.id
                )
        if expected_sha or header_sha:
            digest = _sha256_file(part)
            for name, want in (("listing", expected_sha), ("digest header", header_sha)):
                if want and digest != want:
                    part.unlink(missing_ok=True)
                    state_file.unlink(missing_ok=True)
                    raise ChecksumMismatch(
                        f"clip {clip_id}: SHA-256 {digest} differs from the {name}'s {want}; discarded",
                        source_id=self.id,
                    )
        camera = str(clip.get("camera") or self.id)
        name = Path(str(clip["url"]).split("?", 1)[0]).name or f"{clip_id}.bin"
        start, end = _parse_time(clip.get("start")), _parse_time(clip.get("end"))
        item = self.context.spool.add(
            part,
            source=self.id,
            origin=clip_id,
            name=name,
            vault_source=camera,
            source_kind=self.vault_kind,
            mode="move",
            received_at=received_at,
            fingerprint=expected_sha or header_sha,
            device_time=server_time,
            captured_start=start,
            captured_end=end,
            time_basis="NVR export listing" if start else None,
            meta={
                "site": self.config.site,
                "camera": camera,
                "clip_id": clip_id,
                "url": url,
                "checksum_offered": bool(expected_sha or header_sha),
            },
        )
        state_file.unlink(missing_ok=True)
        self.count_file(item.size)
        self.context.log.info(
            "%s: downloaded clip %s (%d bytes, camera %s)", self.id, clip_id, item.size, camera
        )
        self.context.on_spooled(item)
        return True

    def _append(
        self,
        response: httpx.Response,
        part: Path,
        state: dict[str, Any],
        state_file: Path,
        *,
        mode: str,
    ) -> None:
        state["etag"] = response.headers.get("etag")
        state_file.write_text(json.dumps(state))
        with part.open(mode) as out:
            for chunk in response.iter_bytes():  # as it arrives: an interrupted download keeps it
                out.write(chunk)
                if self.context.stop.is_set():
                    raise SourceError("stopping; download kept for resume", source_id=self.id)
            out.flush()
            os.fsync(out.fileno())

    def run(self) -> None:
        """Poll every ``poll_interval_s`` until stopped; a failed poll is logged and retried."""
        self.set_status(state="polling")
        while not self.context.stop.is_set():
            try:
                n = self.poll_once()
                self.set_status(
                    state="polling",
                    last_poll=self.context.clock().isoformat(),
                    last_error=None,
                    last_new=n,
                )
            except SourceError as error:
                self.set_status(state="error", last_error=str(error))
                self.context.event(self.id, "error", str(error))
            self.context.stop.wait(self.config.poll_interval_s)
        if self._client is not None:
            self._client.close()
        self.set_status(state="stopped")


def _content_total(response: httpx.Response) -> int | None:
    content_range = response.headers.get("content-range")
    if content_range and "/" in content_range:
        total = content_range.rsplit("/", 1)[1]
        return int(total) if total.isdigit() else None
    if response.status_code == 200 and response.headers.get("content-length", "").isdigit():
        return int(response.headers["content-length"])
    return None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


__all__ = ["NvrHttpSource"]
