"""When footage falls due for deletion: arithmetic over the settings, nothing else.

A recording falls due ``days`` after its capture start, where ``days`` is
``Settings.retention_days`` (23 by default) or the override for its source kind
(``Settings.retention_overrides``). The vault stamps that date on each recording at ingest
(``Recording.retain_until``) and sets the store's lifecycle backstop from the longest period;
the reaper (:mod:`vault.casework.retention`) deletes what is due and not held
(:mod:`vault.storage.hold_rule`). Capture times after receipt are a device clock error, and
retention then counts from receipt (:func:`future_capture`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vault.config import Settings
from vault.errors import InvalidInput
from vault.storage.catalog import SourceKind

DEFAULT_RETENTION_DAYS = 23


@dataclass(frozen=True)
class RetentionPolicy:
    """Days from capture to deletion, per source kind."""

    default_days: int = DEFAULT_RETENTION_DAYS
    overrides: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        """The policy ``settings`` configure. Raises InvalidInput for an unknown kind."""
        known = {k.value for k in SourceKind}
        unknown = set(settings.retention_overrides) - known
        if unknown:
            raise InvalidInput(
                f"retention override for unknown source kind(s) {sorted(unknown)}; known: {sorted(known)}"
            )
        return cls(settings.retention_days, dict(settings.retention_overrides))

    def days(self, kind: SourceKind) -> int:
        return self.overrides.get(kind.value, self.default_days)

    def due(self, kind: SourceKind, captured_start: dt.datetime) -> dt.datetime:
        """When footage of ``kind`` captured at ``captured_start`` falls due for deletion."""
        return captured_start + dt.timedelta(days=self.days(kind))

    def describe(self, kind: SourceKind) -> str:
        return f"delete {self.days(kind)} days after capture ({kind.value})"


def future_capture(
    captured_start: dt.datetime,
    captured_end: dt.datetime | None,
    *,
    received_at: dt.datetime,
    tolerance: dt.timedelta,
) -> dict[str, Any] | None:
    """Why footage's capture times are in the future of its receipt, or None when they are not.

    Footage cannot be captured after it was received, so a start (or end) later than
    ``received_at + tolerance`` is a device clock error (issue #11 finding 7). Counting
    retention from such a time would keep it until then (captured "2099": kept until 2099),
    so the caller counts from the receipt instead. Returns ``{"ahead_s": int, "received_at":
    str, "retention_from": "received_at", "reason": str}`` (whole seconds: custody events
    hold no floats).
    """
    latest = max(captured_start, captured_end or captured_start)
    ahead = latest - received_at
    if ahead <= tolerance:
        return None
    which = "start" if captured_start - received_at > tolerance else "end"
    return {
        "ahead_s": int(ahead.total_seconds()),
        "received_at": received_at.isoformat(),
        "retention_from": "received_at",
        "reason": (
            f"capture {which} {latest.isoformat()} is {_span(ahead)} after the footage was "
            f"received ({received_at.isoformat()}): the capture time is wrong; retention "
            "counts from receipt"
        ),
    }




def _span(delta: dt.timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds >= 2 * 86400:
        return f"{seconds // 86400} days"
    if seconds >= 7200:
        return f"{seconds // 3600} hours"
    return f"{seconds} s"


