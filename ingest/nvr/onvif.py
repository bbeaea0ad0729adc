"""ONVIF Profile G NVRs: recording search and replay URIs over SOAP (``onvif-zeep-async``).

What is spoken, all with WS-Security UsernameToken *digest* authentication (the password never
crosses the wire: ``Base64(SHA-1(nonce + created + password))``, ONVIF Core 5.12):

1. ``GetServices`` (device service, the agents file's ``url``): where the search and replay
   services are.
2. ``GetSystemDateAndTime``: the NVR's clock, compared with the vault's (1 s resolution).
3. ``FindRecordings`` (scope: the camera's recording token), ``GetRecordingSearchResults``
   until the search is ``Completed``, ``EndSearch``: the recording's earliest and latest
   footage. The held span of the window is ``[EarliestRecording, LatestRecording]`` clipped
   to it, less the gaps inside it: ``FindEvents`` + ``GetEventSearchResults`` over that span
   (``tns1:RecordingHistory/Track/State`` events with the start state; ``IsDataPresent``
   false where footage stops, true where it resumes), then ``EndSearch``.
4. ``GetRecordingSummary``: the oldest footage the NVR holds at all; with the recording's own
   ``EarliestRecording``, where its retention begins (a window starting earlier is reported as
   ``before_retention``).
5. ``GetReplayUri`` (``RTP-Unicast`` over ``RTSP``): where the recording is replayed.
6. The replay itself: RTSP with ``Require: onvif-replay`` and ``Range: clock=...``, saved
   without re-encoding (ingest/nvr/replay.py), with the same account (RTSP Digest).

Stated limitations:

- **Event search is optional** in Profile G: an NVR that answers ``FindEvents`` with a fault
  (``ter:ActionNotSupported``) lists one span, and the replay finds the gaps instead (the
  ``D`` flag or a jump in the frames' NTP times), reported as ``no_recording`` gaps with
  their times, the frames either side in one recording.
- Tested against a loopback SOAP server whose every answer is validated against the ONVIF
  WSDLs shipped in ``onvif-zeep-async``, and which checks the digest of every request, with
  GStreamer's ONVIF RTSP server and a loopback RTSP replay server written to the ONVIF
  Streaming Specification for the replay (tests/ingest/); not against a commercial NVR's
  firmware.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from ..config import OnvifNvrConfig
from ..errors import NvrAuthFailed, NvrError, NvrUnreachable
from .base import Listing, Span
from .replay import Replayed, RtspReplayClient, mux, replay_window

T = TypeVar("T")

#: The device service path ONVIF fixes (Core 5.1.1); ONVIFCamera builds it from host and port.
DEVICE_PATH = "/onvif/device_service"
_SEARCH_WAIT = "PT5S"
_SEARCH_ROUNDS = 20


class OnvifNvr:
    """A client of one ONVIF Profile G NVR (see the module docstring)."""

    kind = "onvif"

    def __init__(self, config: OnvifNvrConfig) -> None:
        self.config = config
        self.id = config.id
        parts = urlsplit(config.url)
        if parts.path.rstrip("/") != DEVICE_PATH or parts.scheme != "http":
            raise NvrError(
                f"NVR {self.id}: url must be the device service, http://HOST:PORT{DEVICE_PATH} "
                f"(got {config.url})",
                source_id=self.id,
            )
        self._host = parts.hostname or ""
        self._port = parts.port or 80
        user, password = None, None
        secret = config.secret()
        if secret is not None:
            user, _, password = secret.get_secret_value().partition(":")
        self._user, self._password = user, password

    def describe(self) -> dict[str, Any]:
        """Who this NVR is, for custody events and reports (no credentials)."""
        return {"id": self.id, "kind": self.kind, "site": self.config.site, "url": self.config.url}

    # -- the SOAP session ---------------------------------------------------------------------

    def _run(self, what: str, work: Callable[[Any], Awaitable[T]]) -> T:
        """Open the device, run ``work(camera)``, close; map every failure to an NvrError."""
        return asyncio.run(self._session(what, work))

    async def _session(self, what: str, work: Callable[[Any], Awaitable[T]]) -> T:
        import aiohttp
        import zeep.exceptions
        from onvif import ONVIFCamera
        from onvif.exceptions import ONVIFAuthError, ONVIFError

        camera = ONVIFCamera(self._host, self._port, self._user, self._password, no_cache=True)
        try:
            await asyncio.wait_for(camera.update_xaddrs(), self.config.timeout_s)
            return await asyncio.wait_for(work(camera), self.config.timeout_s * 4)
        except zeep.exceptions.Fault as fault:
            if _not_authorized(fault):
                raise self._refused(what) from None
            raise NvrError(
                f"NVR {self.id} answered {what} with a SOAP fault: {fault.message}",
                source_id=self.id,
            ) from None
        except ONVIFAuthError:
            raise self._refused(what) from None
        except (TimeoutError, ONVIFError, aiohttp.ClientError, OSError) as error:
            cause = error.__cause__ or error.__context__ or error
            if isinstance(cause, zeep.exceptions.Fault) and _not_authorized(cause):
                raise self._refused(what) from None
            raise NvrUnreachable(
                f"NVR {self.id} at {self.config.url} did not answer {what} "
                f"({type(error).__name__}: {error or 'timed out'}): check that it is on and "
                "reachable from this host; nothing was pulled",
                source_id=self.id,
            ) from None
        finally:
            await camera.close()

    def _refused(self, what: str) -> NvrAuthFailed:
        reference = self.config.credentials or "(none given)"
        return NvrAuthFailed(
            f"NVR {self.id} refused the credentials {reference} for {what} (SOAP "
            "NotAuthorized): set the user and password of an ONVIF account allowed to search "
            "and replay recordings; nothing was pulled",
            source_id=self.id,
        )

    # -- the Nvr protocol ---------------------------------------------------------------------

    def listing(self, camera: str, start: dt.datetime, end: dt.datetime) -> Listing:
        """The held span of recording ``camera`` in ``[start, end)``, and the NVR's clock."""

        async def work(device: Any) -> Listing:
            server_time = await _system_time(device)
            info = await _find_recording(device, camera)
            spans: tuple[Span, ...] = ()
            first, last = info if info is not None else (None, None)
            if first is not None and last is not None and last > start and first < end:
                held = Span(max(first, start), min(last, end))
                gaps = await _data_gaps(device, camera, held.start, held.end)
                spans = _without(held, gaps or [])
            return Listing(spans=spans, server_time=server_time, server_time_resolution_s=1.0)

        return self._run(f"the recording search for {camera}", work)

    def oldest(self, camera: str) -> dt.datetime | None:
        """The start of recording ``camera``'s footage, no earlier than the NVR's summary."""

        async def work(device: Any) -> dt.datetime | None:
            search = await device.create_search_service()
            summary = await search.GetRecordingSummary()
            held_from = _utc(getattr(summary, "DataFrom", None))
            info = await _find_recording(device, camera)
            first = info[0] if info else None
            candidates = [t for t in (held_from, first) if t is not None]
            return max(candidates) if candidates else None

        return self._run(f"the recording summary for {camera}", work)

    def replay_uri(self, camera: str) -> str:
        """The RTSP URI the NVR replays recording ``camera`` at (``GetReplayUri``)."""

        async def work(device: Any) -> str:
            replay = await device.create_replay_service()
            answer = await replay.GetReplayUri({
                "StreamSetup": {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}},
                "RecordingToken": camera,
            })
            uri = answer if isinstance(answer, str) else getattr(answer, "Uri", None)
            if not uri:
                raise NvrError(f"NVR {self.id} gave no replay URI for {camera}",
                               source_id=self.id)
            return str(uri)

        return self._run(f"the replay URI of {camera}", work)

    def replay(
        self,
        camera: str,
        start: dt.datetime,
        end: dt.datetime,
        *,
        journal: Path,
        out: Path,
        max_attempts: int,
        tell: Callable[[int, str], None],
    ) -> Replayed:
        """Replay ``[start, end)`` of recording ``camera`` over RTSP and save it at ``out``
        (see :class:`ingest.nvr.base.ReplayNvr` and ingest/nvr/replay.py)."""
        uri = self.replay_uri(camera)

        def client() -> RtspReplayClient:
            return RtspReplayClient(
                uri, user=self._user, password=self._password, timeout_s=self.config.timeout_s,
                nvr_id=self.id, credentials_ref=self.config.credentials,
            )

        frames, result = replay_window(client, start, end, journal, max_attempts=max_attempts,
                                       tell=tell)
        try:
            mux(frames, out, start, end)
        finally:
            frames.close()
        journal.unlink()  # the MP4 holds every frame now; a rerun starts from it
        return result

    def close(self) -> None:
        """Nothing held between calls: each call opens and closes its own session."""


async def _system_time(device: Any) -> dt.datetime | None:
    management = await device.create_devicemgmt_service()
    answer = await management.GetSystemDateAndTime()
    utc = getattr(answer, "UTCDateTime", None)
    if utc is None:
        return None
    date, time_ = utc.Date, utc.Time
    return dt.datetime(date.Year, date.Month, date.Day, time_.Hour, time_.Minute, time_.Second,
                       tzinfo=dt.UTC)


async def _find_recording(device: Any, token: str) -> tuple[dt.datetime | None,
                                                             dt.datetime | None] | None:
    """(EarliestRecording, LatestRecording) of recording ``token``; None if not found."""
    search = await device.create_search_service()
    started = await search.FindRecordings({
        "Scope": {"IncludedRecordings": [token]},
        "MaxMatches": 10,
        "KeepAliveTime": "PT30S",
    })
    search_token = started if isinstance(started, str) else started.SearchToken
    found = None
    try:
        for _ in range(_SEARCH_ROUNDS):
            results = await search.GetRecordingSearchResults({
                "SearchToken": search_token, "MinResults": 1, "MaxResults": 10,
                "WaitTime": _SEARCH_WAIT,
            })
            for info in getattr(results, "RecordingInformation", None) or []:
                if info.RecordingToken == token:
                    found = (_utc(info.EarliestRecording), _utc(info.LatestRecording))
            if getattr(results, "SearchState", None) == "Completed":
                break
    finally:
        await search.EndSearch({"SearchToken": search_token})
    return found


#: The Profile G event telling that a track's footage stops or starts ("recording history"
#: events): its Data item ``IsDataPresent`` is ``false`` where a gap starts, ``true`` where
#: footage resumes.
_TRACK_STATE = "RecordingHistory/Track/State"


async def _data_gaps(device: Any, token: str, start: dt.datetime,
                     end: dt.datetime) -> list[tuple[dt.datetime, dt.datetime]] | None:
    """The stretches of ``[start, end)`` where recording ``token`` holds no footage, from
    ``FindEvents`` + ``GetEventSearchResults`` (track state events, with the state at
    ``start``); None where the NVR does not offer event search (the replay finds gaps then)."""
    import zeep.exceptions

    search = await device.create_search_service()
    try:
        started = await search.FindEvents({
            "StartPoint": start, "EndPoint": end,
            "Scope": {"IncludedRecordings": [token]},
            "SearchFilter": {}, "IncludeStartState": True, "KeepAliveTime": "PT30S",
        })
    except zeep.exceptions.Fault as fault:
        if _not_authorized(fault):
            raise
        return None  # ter:ActionNotSupported and the like: event search is optional
    search_token = started if isinstance(started, str) else started.SearchToken
    changes: list[tuple[dt.datetime, bool]] = []
    try:
        for _ in range(_SEARCH_ROUNDS):
            results = await search.GetEventSearchResults({
                "SearchToken": search_token, "MinResults": 1, "MaxResults": 1000,
                "WaitTime": _SEARCH_WAIT,
            })
            for result in getattr(results, "Result", None) or []:
                present = _data_present(result, token)
                when = _utc(getattr(result, "Time", None))
                if present is not None and when is not None:
                    changes.append((when, present))
            if getattr(results, "SearchState", None) == "Completed":
                break
    finally:
        await search.EndSearch({"SearchToken": search_token})
    gaps: list[tuple[dt.datetime, dt.datetime]] = []
    gap_from: dt.datetime | None = None
    for when, present in sorted(changes, key=lambda c: c[0]):
        if not present and gap_from is None:
            gap_from = max(when, start)
        elif present and gap_from is not None:
            if when > gap_from:
                gaps.append((gap_from, min(when, end)))
            gap_from = None
    if gap_from is not None and gap_from < end:
        gaps.append((gap_from, end))
    return gaps


def _data_present(result: Any, token: str) -> bool | None:
    """``IsDataPresent`` of a track state event for recording ``token``; None otherwise."""
    if str(getattr(result, "RecordingToken", "") or token) != token:
        return None
    event = getattr(result, "Event", None)
    topic = getattr(getattr(event, "Topic", None), "_value_1", None)
    if not isinstance(topic, str) or not topic.endswith(_TRACK_STATE):
        return None
    message = getattr(getattr(event, "Message", None), "_value_1", None)
    items = getattr(getattr(message, "Data", None), "SimpleItem", None) or []
    if not items and message is not None and hasattr(message, "iter"):  # left as XML by zeep
        items = [element.attrib for element in message.iter("{*}SimpleItem")]
    for item in items:
        name = item.get("Name") if isinstance(item, dict) else getattr(item, "Name", None)
        value = item.get("Value") if isinstance(item, dict) else getattr(item, "Value", None)
        if name == "IsDataPresent" and value is not None:
            return str(value).lower() == "true"
    return None


def _without(held: Span, gaps: list[tuple[dt.datetime, dt.datetime]]) -> tuple[Span, ...]:
    """``held`` with the ``gaps`` taken out, oldest first."""
    spans, cursor = [], held.start
    for a, b in sorted(gaps):
        if a > cursor:
            spans.append(Span(cursor, min(a, held.end)))
        cursor = max(cursor, b)
    if cursor < held.end:
        spans.append(Span(cursor, held.end))
    return tuple(s for s in spans if s.end > s.start)


def _utc(value: Any) -> dt.datetime | None:
    if not isinstance(value, dt.datetime):
        return None
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(
        dt.UTC)


def _not_authorized(fault: Any) -> bool:
    codes = [str(c) for c in (getattr(fault, "subcodes", None) or [])]
    text = " ".join([*codes, str(getattr(fault, "message", "")), str(getattr(fault, "code", ""))])
    return "NotAuthorized" in text or "not authorized" in text.lower()


__all__ = ["DEVICE_PATH", "OnvifNvr"]
