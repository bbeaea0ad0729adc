"""mediamtx's recorder and playback server as an NVR (mediamtx v1.12, ``playback: yes``).

mediamtx records each path to fMP4 segment files and serves them over HTTP:

- ``GET /list?path=P&start=T0&end=T1``: JSON ``[{"start": RFC 3339, "duration": seconds,
  "url": ...}]``, one entry per stretch of continuous footage (segments that follow each other
  with the same tracks are merged); 404 when nothing is held in the window.
- ``GET /get?path=P&start=T&duration=S``: that stretch as one fragmented MP4, the stored
  samples copied, never re-encoded. It starts at the keyframe at or before ``T``; the samples
  before ``T`` are given zero duration, so a player decodes from the keyframe and shows the
  first frame at ``T`` (frame-accurate to the keyframe). The answer is ``Accept-Ranges: none``:
  a dropped transfer is asked for again from its start (ingest/pull.py checks the bytes it
  already holds against the resend).

Authentication is HTTP Basic (``authInternalUsers`` with the ``playback`` action). The server's
``Date`` header is its stated clock (1 s resolution). A wrong password is refused with 401,
as is a missing one; v1.12.3 as released crashed on the former (upstream #4960, fixed in
scripts/ensure-rtsp.sh's build).
"""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from ..config import MediamtxNvrConfig
from ..errors import NvrAuthFailed, NvrError, NvrUnreachable
from .base import Listing, Span


def _rfc3339(when: dt.datetime) -> str:
    """``when`` as mediamtx parses it (Go's time.RFC3339, fractional seconds allowed)."""
    return when.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _parse_rfc3339(text: str) -> dt.datetime:
    # Go writes up to nine fractional digits; Python reads six.
    head, dot, frac = text.rstrip("Z").partition(".")
    value = dt.datetime.fromisoformat(head + (f".{frac[:6]}" if dot else ""))
    return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value


class _Stream:
    """A /get answer (see :class:`ingest.nvr.base.Fetch`)."""

    resumable = False  # mediamtx answers Accept-Ranges: none

    def __init__(self, response: httpx.Response, nvr: MediamtxNvr, what: str) -> None:
        self._response = response
        self._nvr = nvr
        self._what = what

    def chunks(self) -> Iterator[bytes]:
        try:
            # As the bytes arrive: what came before a drop is kept for the resume.
            yield from self._response.iter_bytes()
        except httpx.HTTPError as error:
            raise NvrError(
                f"NVR {self._nvr.id}: the transfer of {self._what} broke off: "
                f"{type(error).__name__}: {error}",
                source_id=self._nvr.id,
            ) from None


class MediamtxNvr:
    """A client of one mediamtx playback server (see the module docstring)."""

    kind = "mediamtx"

    def __init__(
        self, config: MediamtxNvrConfig, *, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.config = config
        self.id = config.id
        headers = {}
        secret = config.secret()
        if secret is not None:
            # RFC 7617 Basic with UTF-8; only ever sent to this base URL (no redirects followed).
            token = base64.b64encode(secret.get_secret_value().encode("utf-8")).decode("ascii")
            headers["Authorization"] = f"Basic {token}"
        self._client = httpx.Client(
            base_url=config.url.rstrip("/"),
            headers=headers,
            timeout=config.timeout_s,
            verify=config.verify_tls,
            follow_redirects=False,
            transport=transport,
        )

    def describe(self) -> dict[str, Any]:
        """Who this NVR is, for custody events and reports (no credentials)."""
        return {"id": self.id, "kind": self.kind, "site": self.config.site, "url": self.config.url}

    # -- requests ----------------------------------------------------------------------------

    def _check(self, response: httpx.Response, what: str) -> None:
        if response.status_code in (401, 403):
            refused = (
                "refused the credentials " + self.config.credentials
                if self.config.credentials
                else "asked for credentials and the agents file gives none"
            )
            raise NvrAuthFailed(
                f"NVR {self.id} {refused} (HTTP {response.status_code} for {what}): set the "
                "user and password of an account with the 'playback' permission; nothing was "
                "pulled",
                source_id=self.id,
            )
        if response.status_code >= 400:
            body = response.read().decode("utf-8", "replace").strip()[:200]
            raise NvrError(
                f"NVR {self.id} answered HTTP {response.status_code} for {what}: {body}",
                source_id=self.id,
            )

    def _unreachable(self, error: httpx.HTTPError, what: str) -> NvrUnreachable:
        return NvrUnreachable(
            f"NVR {self.id} at {self.config.url} did not answer {what} "
            f"({type(error).__name__}: {error or 'no detail'}): check that it is on and "
            "reachable from this host; nothing was pulled",
            source_id=self.id,
        )

    def _get_json(self, params: dict[str, str], what: str) -> tuple[Any, httpx.Response] | None:
        """GET /list; None when mediamtx holds nothing (404, or a path never recorded)."""
        try:
            response = self._client.get("/list", params=params)
        except httpx.HTTPError as error:
            raise self._unreachable(error, what) from None
        if response.status_code == 404:
            return None
        # A path configured but never recorded has no directory yet; mediamtx says so as a 400.
        if response.status_code == 400 and "no such file or directory" in response.text:
            return None
        self._check(response, what)
        try:
            return response.json(), response
        except json.JSONDecodeError:
            raise NvrError(
                f"NVR {self.id}: {what} is not JSON ({response.text[:120]!r})", source_id=self.id
            ) from None

    def listing(self, camera: str, start: dt.datetime, end: dt.datetime) -> Listing:
        """The spans of ``camera`` in ``[start, end)`` (see :class:`ingest.nvr.base.Nvr`)."""
        what = f"the recording list of {camera}"
        answer = self._get_json(
            {"path": camera, "start": _rfc3339(start), "end": _rfc3339(end)}, what
        )
        spans: list[Span] = []
        server_time = None
        if answer is not None:
            entries, response = answer
            server_time = _date_header(response)
            spans = [s for s in (_span(e, self.id) for e in _entries(entries, self.id)) if s]
            spans = [
                Span(max(s.start, start), min(s.end, end))
                for s in spans
                if s.end > start and s.start < end
            ]
        else:
            server_time = self._server_time()
        return Listing(
            spans=tuple(spans),
            server_time=server_time,
            server_time_resolution_s=1.0,
        )

    def _server_time(self) -> dt.datetime | None:
        """The NVR's clock from the Date header of a cheap request (any status)."""
        try:
            response = self._client.get("/list", params={"path": "", "start": _rfc3339(_EPOCH)})
        except httpx.HTTPError:
            return None
        return _date_header(response)

    def oldest(self, camera: str) -> dt.datetime | None:
        """Start of the oldest footage of ``camera`` mediamtx still holds (or None)."""
        answer = self._get_json({"path": camera}, f"the recording list of {camera}")
        if answer is None:
            return None
        spans = [s for s in (_span(e, self.id) for e in _entries(answer[0], self.id)) if s]
        return min((s.start for s in spans), default=None)

    @contextmanager
    def fetch(
        self, camera: str, start: dt.datetime, end: dt.datetime, *, offset: int = 0
    ) -> Iterator[_Stream]:
        """Stream ``[start, end)`` of ``camera`` as fMP4 (``offset`` is not supported by
        mediamtx: the answer starts from byte 0, ``resumable`` False)."""
        seconds = (end - start).total_seconds()
        what = f"{camera} {_rfc3339(start)} +{seconds:g}s"
        params = {"path": camera, "start": _rfc3339(start), "duration": f"{seconds:.6f}"}
        try:
            with self._client.stream("GET", "/get", params=params) as response:
                self._check(response, what)
                yield _Stream(response, self, what)
        except httpx.HTTPError as error:
            raise self._unreachable(error, what) from None

    def close(self) -> None:
        """Close the HTTP connections."""
        self._client.close()


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _entries(data: Any, nvr_id: str) -> list[Any]:
    if not isinstance(data, list):
        raise NvrError(f"NVR {nvr_id}: the recording list is not a JSON list", source_id=nvr_id)
    return data


def _span(entry: Any, nvr_id: str) -> Span | None:
    try:
        start = _parse_rfc3339(str(entry["start"]))
        seconds = float(entry["duration"])
    except (KeyError, TypeError, ValueError):
        raise NvrError(
            f"NVR {nvr_id}: a recording list entry without start/duration: {entry!r:.120}",
            source_id=nvr_id,
        ) from None
    if seconds <= 0:
        return None
    return Span(start, start + dt.timedelta(seconds=seconds))


def _date_header(response: httpx.Response) -> dt.datetime | None:
    value = response.headers.get("date")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).astimezone(dt.timezone.utc)
    except (TypeError, ValueError):
        return None


__all__ = ["MediamtxNvr"]
