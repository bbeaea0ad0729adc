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

The listing is input from a device on the site network, so it is not trusted to steer the agent
(issue #11 finding 5):

1. Every request this source makes, redirects included, goes to the listing's origin (scheme,
   host and port of ``url``); a clip URL or ``Location`` elsewhere is refused before anything is
   sent, and the refusal is logged. The NVR's credentials therefore only ever reach the NVR.
2. A clip is filed under a camera the agents file lists for this source (``cameras``), or under
   the source id when none are listed; a clip naming any other camera is refused, so a listing
   cannot plant footage under another site's camera.
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
from collections.abc import Generator
from urllib.parse import urljoin

import httpx

from vault.plaintext import open_private

from .config import NvrHttpSourceConfig
from .errors import ChecksumMismatch, OriginRefused, SourceError, SpoolError
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


_DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: httpx.URL) -> tuple[str, str, int]:
    """The RFC 6454 origin of ``url``: scheme, lower-cased host and port (default filled in)."""
    scheme = url.scheme.lower()
    return scheme, url.host.lower(), url.port or _DEFAULT_PORTS.get(scheme, -1)


class _OriginAuth(httpx.Auth):
    """Adds the NVR's credentials to requests for the listing's origin and to nothing else.

    The origin guard already refuses other origins; this keeps the credentials at home even if
    a request somehow got past it (defence in depth for finding 5).
    """

    def __init__(self, origin: tuple[str, str, int], header: str) -> None:
        self._origin = origin
        self._header = header

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if _origin(request.url) == self._origin:
            request.headers["Authorization"] = self._header
        yield request


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
        self._refused: set[str] = set()  # clip ids already reported as refused (log once)
        self._client: httpx.Client | None = None
        self._origin = _origin(httpx.URL(config.url))

    def _http(self) -> httpx.Client:
        if self._client is None:
            auth: httpx.Auth | None = None
            secret = self.config.secret()
            if secret is not None:
                value = secret.get_secret_value()
                if self.config.auth == "bearer":
                    header = f"Bearer {value}"
                else:
                    # RFC 7617 with UTF-8, as httpx.BasicAuth sends it, but kept to the origin.
                    header = "Basic " + base64.b64encode(value.encode("utf-8")).decode("ascii")
                auth = _OriginAuth(self._origin, header)
            self._client = httpx.Client(
                auth=auth,
                timeout=self.config.timeout_s,
                verify=self.config.verify_tls,
                follow_redirects=True,
                max_redirects=5,
                # httpx calls request hooks for every request it sends, each redirect included,
                # so this one guard covers the listing, the clips and wherever they redirect.
                event_hooks={"request": [self._guard_origin]},
            )
        return self._client

    def _guard_origin(self, request: httpx.Request) -> None:
        if _origin(request.url) != self._origin or request.url.userinfo:
            raise OriginRefused(
                f"{self.id}: refused a request to {_redact(request.url)}: only "
                f"{_redact(httpx.URL(self.config.url).copy_with(path='/'))} (the export "
                "listing's scheme, host and port) is fetched from",
                source_id=self.id,
            )

    def _camera(self, clip: dict[str, Any]) -> str | None:
        """The vault camera id a clip is filed under, or None when the source may not use it."""
        named = clip.get("camera")
        camera = str(named) if named not in (None, "") else None
        if self.config.cameras:
            if camera is None and len(self.config.cameras) == 1:
                return self.config.cameras[0]
            return camera if camera in self.config.cameras else None
        return self.id if camera in (None, self.id) else None

    def _refuse(self, clip_id: str, message: str) -> None:
        """Log a refused clip once per agent run (the listing repeats it every poll)."""
        if clip_id in self._refused:
            return
        self._refused.add(clip_id)
        self.context.event(self.id, "refused", f"clip {clip_id}: {message}", clip=clip_id)
        self.context.log.warning("%s: clip %s refused: %s", self.id, clip_id, message)

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
            url = httpx.URL(urljoin(self.config.url, str(clip["url"])))
            if _origin(url) != self._origin or url.userinfo:
                self._refuse(
                    clip_id,
                    f"its URL {_redact(url)} is not on the export listing's origin "
                    f"({self._origin[0]}://{self._origin[1]}:{self._origin[2]}); nothing fetched",
                )
                continue
            if self._camera(clip) is None:
                allowed = ", ".join(self.config.cameras) or self.id
                self._refuse(
                    clip_id,
                    f"camera {str(clip.get('camera'))!r:.80} is not one this source may file "
                    f"under ({allowed}); add it to 'cameras' in the agents file if it belongs "
                    "to this NVR; nothing fetched",
                )
                continue
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
        """Download one listed clip (resuming a partial one), check it and spool it; False
        when the spool has no room for it yet. Raises SourceError (ChecksumMismatch) when the
        download fails or its checks do."""
        clip_id = str(clip["id"])
        url = urljoin(self.config.url, str(clip["url"]))
        expected_size = clip.get("size") if isinstance(clip.get("size"), int) else None
        expected_sha = str(clip["sha256"]).lower() if clip.get("sha256") else None
        if expected_size is not None and not self.wait_for_room(expected_size):
            return False
        part, state_file = self._partial_paths(clip_id)
        state = self._resume_state(part, state_file, url)
        self.set_status(state=f"downloading {clip_id}")
        header_sha, total = self._fetch(url, part, state, state_file, expected_size)
        self._check(clip_id, part, state_file, sizes={"listing": expected_size,
                                                      "Content-Range/Length": total},
                    digests={"listing": expected_sha, "digest header": header_sha})
        self._spool(clip, part, state_file, url=url, fingerprint=expected_sha or header_sha,
                    server_time=server_time, received_at=received_at)
        return True

    @staticmethod
    def _resume_state(part: Path, state_file: Path, url: str) -> dict[str, Any]:
        # What an earlier, interrupted download of this clip left (its URL and ETag); a
        # partial file from another URL is dropped.
        state: dict[str, Any] = {}
        if part.exists() and state_file.exists():
            try:
                state = json.loads(state_file.read_text())
            except ValueError:
                state = {}
        if state.get("url") != url:
            part.unlink(missing_ok=True)
            state = {"url": url}
        return state

    def _fetch(
        self, url: str, part: Path, state: dict[str, Any], state_file: Path,
        expected_size: int | None,
    ) -> tuple[str | None, int | None]:
        # GET the clip into ``part``, from where it stopped when the server resumes (206,
        # guarded by If-Range) or whole (200). Returns the SHA-256 a header gave and the total
        # size the response stated.
        have = part.stat().st_size if part.exists() else 0
        headers = {}
        if have:
            headers["Range"] = f"bytes={have}-"
            if state.get("etag"):
                headers["If-Range"] = state["etag"]
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
                return _header_sha256(response.headers), _content_total(response)
        except httpx.HTTPError as error:
            raise SourceError(
                f"download of {url} interrupted: {error}", source_id=self.id
            ) from None

    def _check(
        self, clip_id: str, part: Path, state_file: Path, *, sizes: dict[str, int | None],
        digests: dict[str, str | None],
    ) -> None:
        # Checks, numbered: 1. size (the listing's, then the response's), 2. the listing's
        # SHA-256, 3. the header's SHA-256. A download too long or with the wrong digest is
        # discarded; one too short is kept to resume.
        size = part.stat().st_size
        for name, want in sizes.items():
            if want is not None and size != want:
                if size > want:
                    part.unlink(missing_ok=True)
                raise SourceError(
                    f"clip {clip_id}: {size} bytes, the {name} says {want}", source_id=self.id
                )
        if not any(digests.values()):
            return
        digest = _sha256_file(part)
        for name, wanted in digests.items():
            if wanted and digest != wanted:
                part.unlink(missing_ok=True)
                state_file.unlink(missing_ok=True)
                raise ChecksumMismatch(
                    f"clip {clip_id}: SHA-256 {digest} differs from the {name}'s {wanted}; discarded",
                    source_id=self.id,
                )

    def _spool(
        self, clip: dict[str, Any], part: Path, state_file: Path, *, url: str,
        fingerprint: str | None,
        server_time: dt.datetime | None, received_at: dt.datetime,
    ) -> None:
        # Move the checked download into the spool, filed under its camera.
        clip_id = str(clip["id"])
        camera = self._camera(clip)
        assert camera is not None  # poll_once refused the clip otherwise
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
            fingerprint=fingerprint,
            device_time=server_time,
            captured_start=start,
            captured_end=end,
            time_basis="NVR export listing" if start else None,
            meta={
                "site": self.config.site,
                "camera": camera,
                "clip_id": clip_id,
                "url": url,
                "checksum_offered": bool(fingerprint),
            },
        )
        state_file.unlink(missing_ok=True)
        self.count_file(item.size)
        self.context.log.info(
            "%s: downloaded clip %s (%d bytes, camera %s)", self.id, clip_id, item.size, camera
        )
        self.context.on_spooled(item)

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
        if mode == "wb":
            part.unlink(missing_ok=True)
        # Footage: the partial download is 0600 from its creation (vault/plaintext.py).
        with open_private(part, append=True) as out:
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


def _redact(url: httpx.URL) -> str:
    """``url`` for a log line: without user information or query (either may hold secrets)."""
    return str(url.copy_with(userinfo=b"", query=None, fragment=None))


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
