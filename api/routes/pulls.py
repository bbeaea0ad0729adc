"""Pulling past footage from a site's NVR (issue #17; ingest/pull.py does the work).

    POST /ingest/pulls   {nvr, camera, start, end} -> 201 the pull's report

Who may pull: whoever may place a hold on the camera's footage (``holds.place`` on its source,
vault/casework/policy.py ``require_source``): administrators; information-governance and police liaison
officers of the organisation that owns the camera's site; ASB officers assigned to that site.
Pulling footage is asking the vault to keep evidence of an incident, as a hold is; auditors
and ingest agents may not. The camera must be one the agents file (``agents_file`` setting)
maps for that NVR; its source is created in the catalog on first use, at the NVR's site (as
ingest would on first sight), so the organisation boundary applies before anything is fetched.
A scoped user naming an NVR or camera outside their sites is refused whether or not it exists.

The pull runs within the request (a worker thread): the answer comes when the footage is in
the vault, with the gaps and the clock check. A window is bounded by the NVR's
``max_window_hours``; the request needs ``X-Purpose``, recorded in custody with the pull.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from typing import Any

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from ingest import AgentsFile, NvrConfig, PullReport, load_agents_file, pull, pull_spool_dir
from vault.access.identity import Principal
from vault.actors import Purpose, Role
from vault.storage.catalog import SourceKind
from vault.errors import NotFound
from vault.casework.policy import Permission, allowed, is_scoped
from vault.vault import Vault

from ..deps import ContextDep, RequestContext, PurposeDep
from ..errors import responses
from ..schemas import Instant, ShortText

router = APIRouter(tags=["ingest"])


class PullCreate(BaseModel):
    """A window of one camera to fetch from its site's NVR."""

    model_config = ConfigDict(extra="forbid")

    nvr: ShortText = Field(description="The NVR's id in the agents file ([[nvrs]]).")
    camera: ShortText = Field(description="Vault camera id (the NVR's name for it is mapped).")
    start: Instant = Field(description="Window start; without an offset, UK local time.")
    end: Instant = Field(description="Window end; without an offset, UK local time.")


class PullWindow(BaseModel):
    start: dt.datetime
    end: dt.datetime


class PulledRecording(PullWindow):
    recording_id: str
    sha256: str
    size: int
    duration_ms: int | None
    attempts: int = Field(description="Requests it took (more than 1: the connection dropped).")
    resumed_bytes: int = Field(description="Bytes kept from before a dropped connection.")
    already_pulled: bool = Field(description="An earlier run of the same pull stored it.")
    replay: dict[str, Any] | None = Field(
        default=None,
        description="ONVIF NVRs: the RTSP replay's account (frames kept, pre-roll frames, frames "
        "waited for a keyframe, first and last frame shown, resumes, gaps; docs/nvr-pull.md).",
    )


class PullGap(PullWindow):
    seconds: int
    reason: str = Field(description="before_retention, no_recording, future or short_transfer.")
    message: str


class PullPublic(BaseModel):
    """What a pull fetched, what it could not, and the NVR's clock."""

    id: str
    state: str = Field(description="complete, partial (see gaps) or empty.")
    nvr: dict[str, Any] = Field(description="The NVR: id, kind, site, URL.")
    camera: str
    nvr_camera: str
    window: PullWindow
    requested_by: dict[str, Any]
    recordings: list[PulledRecording]
    gaps: list[PullGap]
    clock: dict[str, Any] | None = Field(
        description="The NVR's stated time against the vault's, offset and flag (as for docks)."
    )
    oldest_held: dt.datetime | None = Field(
        description="Start of the oldest footage of the camera the NVR keeps, where it mattered."
    )


def _nvr(agents: AgentsFile, nvr_id: str) -> NvrConfig | None:
    return next((n for n in agents.nvrs if n.id == nvr_id), None)


@router.post(
    "/ingest/pulls",
    summary="Pull a past window from a site's NVR",
    description="Fetch one camera's footage for a past window from its site's NVR (mediamtx "
    "playback server, ONVIF Profile G) and ingest it: hashed, encrypted, cataloged, with "
    "custody naming the NVR, the window and you. Parts of the window the NVR does not hold "
    "are reported as gaps with their reason; the NVR's clock is compared with the vault's and "
    "flagged beyond the bound. Needs `holds.place` on the camera (its site's organisation; "
    "ASB officers: their sites) and `X-Purpose`. 502 when the NVR is down or refuses the "
    "vault's credentials (the attempt is in custody); 409 while another pull from the same "
    "NVR runs. See docs/nvr-pull.md.",
    status_code=status.HTTP_201_CREATED,
    response_model=PullPublic,
    responses=responses(400, 401, 403, 404, 409, 502),
)
def create_pull(
    ctx: ContextDep, purpose: PurposeDep,
    body: PullCreate,
) -> dict[str, Any]:
    return pull_window(ctx, nvr=body.nvr, camera=body.camera, start=body.start,
                       end=body.end, purpose=purpose.require).to_dict()


def configured_agents(vault: Vault) -> AgentsFile:
    """The agents file the ``agents_file`` setting names (empty without one). Raises
    AgentsFileError when it is missing or invalid."""
    settings = vault.settings
    return load_agents_file(settings.agents_file) if settings.agents_file else AgentsFile()


def pull_window(
    ctx: RequestContext, *, nvr: str, camera: str, start: dt.datetime,
    end: dt.datetime, purpose: Callable[[], Purpose],
) -> PullReport:
    """Pull ``camera``'s ``start``-``end`` from NVR ``nvr`` for ``principal``: the one body of
    ``POST /ingest/pulls`` and the web app's find page, so both ask the same questions.

    ``purpose`` is called only once the caller may pull (a missing purpose is a 400 after the
    403 a refused caller gets). Raises AccessDenied (logged), NotFound (no such NVR or camera in
    the agents file), InvalidInput (purpose, window), and the ingest NVR errors (down, refused
    credentials, another pull running).
    """
    ctx.require(Permission.HOLD_PLACE)
    agents = configured_agents(ctx.vault)
    config = _nvr(agents, nvr)
    if config is None or camera not in config.cameras:
        # Asked as for any source: a scoped user is refused whether or not it exists.
        ctx.require_source(Permission.HOLD_PLACE, camera)
        raise NotFound(f"no NVR {nvr!r} with camera {camera!r} in the agents file")
    with ctx.vault.sessions.begin() as session:
        ctx.vault.ensure_source(session, camera, kind=SourceKind.CCTV, site=config.site)
    ctx.require_source(Permission.HOLD_PLACE, camera)
    stated = purpose()
    return pull(
        ctx.vault, agents, nvr_id=config.id, camera=camera, start=start, end=end,
        requested_by=ctx.principal.actor, purpose=stated,
        spool_dir=pull_spool_dir(ctx.vault.settings, config.id), lock_wait_s=5.0,
    )


def pullable_cameras(principal: Principal, agents: AgentsFile,
                     sites: Collection[str]) -> list[tuple[str, str, str | None]]:
    """(NVR id, camera, site) of each camera the agents file maps that the page may offer
    ``principal`` to pull: none without ``holds.place``; for scoped roles only their sites'; for
    others the ``sites`` they already see footage of (administrators: all). An offer is not
    the decision: :func:`pull_window` asks the policy again."""
    if not allowed(principal.role, Permission.HOLD_PLACE):
        return []
    if is_scoped(principal):
        shown: Collection[str] | None = principal.sites
    elif principal.role is Role.ADMINISTRATOR:
        shown = None
    else:
        shown = sites
    return [(n.id, camera, n.site) for n in agents.nvrs for camera in sorted(n.cameras)
            if shown is None or n.site in shown]


__all__ = ["PullCreate", "PullPublic", "configured_agents", "pull_window", "pullable_cameras", "router"]
