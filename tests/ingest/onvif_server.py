"""A loopback ONVIF Profile G SOAP endpoint for the pull tests: device, search and replay
services answering from a recording's stated times.

It is not a commercial NVR's firmware, and the tests say so. What keeps it honest:

1. every answer it sends is validated, before it is sent, against the schemas of the ONVIF
   WSDLs that ``onvif-zeep-async`` ships (devicemgmt, search, replay and onvif.xsd), so a
   client that reads it reads what the standard defines;
2. every request but ``GetSystemDateAndTime`` must carry a WS-Security UsernameToken whose
   ``PasswordDigest`` is ``Base64(SHA-1(nonce + created + password))`` for the configured
   user (ONVIF Core 5.12.2); otherwise it answers the standard ``ter:NotAuthorized`` fault;
3. it records every operation it was asked, so tests can check what the client sent.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import hashlib
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from lxml import etree

ENV = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
NS = {
    "env": ENV,
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "tse": "http://www.onvif.org/ver10/search/wsdl",
    "trp": "http://www.onvif.org/ver10/replay/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "ter": "http://www.onvif.org/ver10/error",
    "wsse": WSSE,
    "wsu": WSU,
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "tns1": "http://www.onvif.org/ver10/topics",
}
WSDLS = {"tds": "devicemgmt.wsdl", "tse": "search.wsdl", "trp": "replay.wsdl"}


def wsdl_dir() -> Path:
    import onvif

    return Path(onvif.__file__).parent / "wsdl"


@functools.lru_cache(maxsize=None)
def schema(prefix: str) -> etree.XMLSchema:
    """The XML Schema embedded in the ONVIF WSDL of ``prefix``'s service (imports resolved
    from the shipped files)."""
    path = wsdl_dir() / WSDLS[prefix]
    wsdl = etree.parse(str(path))
    xs = wsdl.find(".//{http://www.w3.org/2001/XMLSchema}schema")
    assert xs is not None, f"no schema in {path}"
    # Parsed with the WSDL's own location, so schemaLocation imports resolve beside it.
    document = etree.ElementTree(etree.fromstring(etree.tostring(xs), base_url=str(path)))
    return etree.XMLSchema(document)


def validate(prefix: str, element: etree._Element) -> None:
    """Raise if ``element`` (a response body element) is not valid by the ONVIF WSDL."""
    checker = schema(prefix)
    if not checker.validate(etree.ElementTree(element)):
        raise AssertionError(f"invalid {etree.QName(element).localname}: {checker.error_log}")


def _t(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class OnvifNvrServer:
    """The endpoint (see the module docstring); ``recordings``: token -> (earliest, latest)."""

    user: str
    password: str
    recordings: dict[str, tuple[dt.datetime, dt.datetime]]
    clock_offset: dt.timedelta = dt.timedelta(0)
    replay_base: str = "rtsp://127.0.0.1:8554"
    #: token -> stretches inside (earliest, latest) with no footage, told by FindEvents
    gaps: dict[str, list[tuple[dt.datetime, dt.datetime]]] = field(default_factory=dict)
    #: False: FindEvents is answered ter:ActionNotSupported, as by NVRs without event search
    event_search: bool = True
    asked: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/onvif/device_service"

    def start(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                length = int(self.headers.get("Content-Length") or 0)
                status, body = owner.answer(self.rfile.read(length), self.path)
                self.send_response(status)
                self.send_header("Content-Type", "application/soap+xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    # -- answering ----------------------------------------------------------------------------

    def answer(self, raw: bytes, path: str) -> tuple[int, bytes]:
        request = etree.fromstring(raw)
        body = request.find(f"{{{ENV}}}Body")
        assert body is not None and len(body), "a SOAP 1.2 envelope with a body"
        operation = etree.QName(body[0]).localname
        self.asked.append(operation)
        if operation != "GetSystemDateAndTime" and not self._authorized(request):
            self.refused.append(operation)
            return 400, self._fault()
        if operation == "FindEvents" and not self.event_search:
            return 400, self._fault("env:Receiver", "ter:ActionNotSupported",
                                    "Optional Action Not Implemented")
        prefix, response = getattr(self, f"_{operation}")(body[0])
        validate(prefix, response)  # 1. what is sent is what the WSDL defines
        return 200, self._envelope(response)

    def _authorized(self, request: etree._Element) -> bool:
        token = request.find(f".//{{{WSSE}}}UsernameToken")
        if token is None:
            return False
        user = token.findtext(f"{{{WSSE}}}Username")
        password = token.find(f"{{{WSSE}}}Password")
        nonce = token.findtext(f"{{{WSSE}}}Nonce")
        created = token.findtext(f"{{{WSU}}}Created")
        if password is None or not nonce or not created or not password.text:
            return False
        if not (password.get("Type") or "").endswith("#PasswordDigest"):
            return False  # 2. digest only: a plain-text password is refused
        expected = base64.b64encode(hashlib.sha1(
            base64.b64decode(nonce) + created.encode() + self.password.encode()).digest()).decode()
        return user == self.user and password.text == expected

    def _envelope(self, response: etree._Element) -> bytes:
        envelope = etree.Element(f"{{{ENV}}}Envelope", nsmap={"env": ENV})
        etree.SubElement(envelope, f"{{{ENV}}}Body").append(response)
        return bytes(etree.tostring(envelope, xml_declaration=True, encoding="utf-8"))

    def _fault(self, code: str = "env:Sender", subcode: str = "ter:NotAuthorized",
               reason: str = "Sender not Authorized") -> bytes:
        return (
            f'<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="{ENV}" '
            f'xmlns:ter="{NS["ter"]}"><env:Body><env:Fault><env:Code><env:Value>{code}'
            f"</env:Value><env:Subcode><env:Value>{subcode}</env:Value></env:Subcode>"
            f'</env:Code><env:Reason><env:Text xml:lang="en">{reason}</env:Text>'
            "</env:Reason></env:Fault></env:Body></env:Envelope>"
        ).encode()

    @staticmethod
    def _xml(text: str) -> etree._Element:
        spaces = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())
        wrapped = etree.fromstring(f"<w {spaces}>{text}</w>")
        return wrapped[0]

    # -- the operations -----------------------------------------------------------------------

    def _GetServices(self, request: etree._Element) -> tuple[str, etree._Element]:  # noqa: N802
        base = self.url.rsplit("/", 1)[0]
        services = "".join(
            f"<tds:Service><tds:Namespace>{NS[p]}</tds:Namespace><tds:XAddr>{base}/{name}"
            "</tds:XAddr><tds:Version><tt:Major>2</tt:Major><tt:Minor>42</tt:Minor>"
            "</tds:Version></tds:Service>"
            for p, name in (("tds", "device_service"), ("tse", "search_service"),
                            ("trp", "replay_service"))
        )
        return "tds", self._xml(f"<tds:GetServicesResponse>{services}</tds:GetServicesResponse>")

    def _GetSystemDateAndTime(self, request: etree._Element) -> tuple[str, etree._Element]:  # noqa: N802
        now = dt.datetime.now(dt.UTC) + self.clock_offset
        return "tds", self._xml(
            "<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime>"
            "<tt:DateTimeType>NTP</tt:DateTimeType><tt:DaylightSavings>false</tt:DaylightSavings>"
            f"<tt:UTCDateTime><tt:Time><tt:Hour>{now.hour}</tt:Hour><tt:Minute>{now.minute}"
            f"</tt:Minute><tt:Second>{now.second}</tt:Second></tt:Time><tt:Date><tt:Year>"
            f"{now.year}</tt:Year><tt:Month>{now.month}</tt:Month><tt:Day>{now.day}</tt:Day>"
            "</tt:Date></tt:UTCDateTime></tds:SystemDateAndTime>"
            "</tds:GetSystemDateAndTimeResponse>"
        )

    def _FindRecordings(self, request: etree._Element) -> tuple[str, etree._Element]:  # noqa: N802
        self._scope = [e.text for e in request.iterfind(".//tt:IncludedRecordings", NS)]
        return "tse", self._xml(
            "<tse:FindRecordingsResponse><tse:SearchToken>search-1</tse:SearchToken>"
            "</tse:FindRecordingsResponse>")

    def _GetRecordingSearchResults(self, request: etree._Element) -> tuple[str, etree._Element]:  # noqa: N802
        found = ""
        for token, (first, last) in self.recordings.items():
            if getattr(self, "_scope", None) and token not in self._scope:
                continue
            found += (
                f"<tt:RecordingInformation><tt:RecordingToken>{token}</tt:RecordingToken>"
                "<tt:Source><tt:SourceId>urn:camera</tt:SourceId><tt:Name>Bin store</tt:Name>"
                "<tt:Location>Northgate</tt:Location><tt:Description>cam</tt:Description>"
                "<tt:Address>rtsp://camera/</tt:Address></tt:Source>"
                f"<tt:EarliestRecording>{_t(first)}</tt:EarliestRecording>"
                f"<tt:LatestRecording>{_t(last)}</tt:LatestRecording>"
                "<tt:Content>continuous</tt:Content>"
                "<tt:Track><tt:TrackToken>video</tt:TrackToken><tt:TrackType>Video</tt:TrackType>"
                f"<tt:Description>H.264</tt:Description><tt:DataFrom>{_t(first)}</tt:DataFrom>"
                f"<tt:DataTo>{_t(last)}</tt:DataTo></tt:Track>"
                "<tt:RecordingStatus>Recording</tt:RecordingStatus></tt:RecordingInformation>"
            )
        return "tse", self._xml(
            "<tse:GetRecordingSearchResultsResponse><tse:ResultList>"
            f"<tt:SearchState>Completed</tt:SearchState>{found}"
            "</tse:ResultList></tse:GetRecordingSearchResultsResponse>")

    def _EndSearch(self, request: etree._Element) -> tuple[str, etree._Element]:  # noqa: N802
        return "tse", self._xml(
            f"<tse:EndSearchResponse><tse:Endpoint>{_t(dt.datetime.now(dt.UTC))}</tse:Endpoint>"
            "</tse:EndSearchResponse>")

    def _GetRecordingSummary(self, request: etree._Element) -> tuple[str, etree._Element]:  # noqa: N802
        first = min(r[0] for r in self.recordings.values())
        last = max(r[1] for r in self.recordings.values())
        return "tse", self._xml(
            "<tse:GetRecordingSummaryResponse><tse:Summary>"
            f"<tt:DataFrom>{_t(first)}</tt:DataFrom><tt:DataUntil>{_t(last)}</tt:DataUntil>"
            f"<tt:NumberRecordings>{len(self.recordings)}</tt:NumberRecordings>"
            "</tse:Summary></tse:GetRecordingSummaryResponse>")

    def _GetReplayUri(self, request: etree._Element) -> tuple[str, etree._Element]:  # noqa: N802
        token = request.findtext(".//trp:RecordingToken", namespaces=NS)
        return "trp", self._xml(
            f"<trp:GetReplayUriResponse><trp:Uri>{self.replay_base}/{token}</trp:Uri>"
            "</trp:GetReplayUriResponse>")

    def _FindEvents(self, request: etree._Element) -> tuple[str, etree._Element]:  # noqa: N802
        self._event_scope = [e.text for e in request.iterfind(".//tt:IncludedRecordings", NS)]
        self._event_window = (
            _parse_t(request.findtext("tse:StartPoint", namespaces=NS)),
            _parse_t(request.findtext("tse:EndPoint", namespaces=NS)),
        )
        self._start_state = request.findtext("tse:IncludeStartState", namespaces=NS) == "true"
        return "tse", self._xml(
            "<tse:FindEventsResponse><tse:SearchToken>events-1</tse:SearchToken>"
            "</tse:FindEventsResponse>")

    def _GetEventSearchResults(self, request: etree._Element) -> tuple[str, etree._Element]:  # noqa: N802
        # tns1:RecordingHistory/Track/State with IsDataPresent, as Profile G devices report
        # footage stopping and starting on a track.
        start, end = self._event_window
        found = ""
        for token in self._event_scope or list(self.recordings):
            changes: list[tuple[dt.datetime, bool, bool]] = []
            gaps = self.gaps.get(token, [])
            if self._start_state and start is not None:
                inside = any(a <= start < b for a, b in gaps)
                changes.append((start, not inside, True))
            for a, b in gaps:
                for when, present in ((a, False), (b, True)):
                    if (start is None or when >= start) and (end is None or when < end):
                        changes.append((when, present, False))
            for when, present, state in sorted(changes):
                found += (
                    f"<tt:Result><tt:RecordingToken>{token}</tt:RecordingToken>"
                    f"<tt:TrackToken>video</tt:TrackToken><tt:Time>{_t(when)}</tt:Time>"
                    '<tt:Event><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/'
                    'topicExpression/ConcreteSet">tns1:RecordingHistory/Track/State</wsnt:Topic>'
                    f'<wsnt:Message><tt:Message UtcTime="{_t(when)}"><tt:Source>'
                    f'<tt:SimpleItem Name="RecordingToken" Value="{token}"/>'
                    '<tt:SimpleItem Name="Track" Value="video"/></tt:Source><tt:Data>'
                    f'<tt:SimpleItem Name="IsDataPresent" Value="{str(present).lower()}"/>'
                    "</tt:Data></tt:Message></wsnt:Message></tt:Event>"
                    f"<tt:StartStateEvent>{str(state).lower()}</tt:StartStateEvent></tt:Result>"
                )
        return "tse", self._xml(
            "<tse:GetEventSearchResultsResponse><tse:ResultList>"
            f"<tt:SearchState>Completed</tt:SearchState>{found}"
            "</tse:ResultList></tse:GetEventSearchResultsResponse>")


def _parse_t(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
