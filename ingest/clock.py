"""Device clocks: what the device said the time was, what the agent's clock said, and whether
the difference matters.

Police care about *when*, exactly, and a body-worn device or camera whose clock drifted puts
every capture time it writes out by the same amount. So the agent keeps both readings and never
rewrites the footage's own times:

- ``device_time``: the device's clock at the moment it handed the footage over, as the device
  stated it (a dock sidecar's ``device_time``, an NVR's ``server_time``), when it states one;
- ``received_at``: the agent's clock at that same moment.

``offset_s = device_time - received_at`` (positive: the device runs fast). An offset beyond the
configured bound is *flagged*: recorded with the recording (catalog columns ``device_time``,
``clock_offset_ms``, ``clock_flagged``, searchable as ``GET /recordings?clock_flagged=true``;
the full check in ``media_info.clock``) and in its ``ingested`` custody event, and logged, so
a reviewer can correct the capture time with a stated reason. A capture time later than the receipt (the device claims the footage was
captured in the agent's future) is flagged too, even when the device states no clock.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ClockCheck:
    """The two clock readings at hand-over and the verdict."""

    received_at: dt.datetime
    bound_s: float
    device_time: dt.datetime | None = None
    offset_s: float | None = None
    flagged: bool = False
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, stored in ``media_info.clock`` and the custody event."""
        return {
            "device_time": self.device_time.isoformat() if self.device_time else None,
            "received_at": self.received_at.isoformat(),
            "offset_s": self.offset_s,
            "bound_s": self.bound_s,
            "flagged": self.flagged,
            "reason": self.reason,
        }


def check_clock(
    *,
    received_at: dt.datetime,
    bound_s: float,
    device_time: dt.datetime | None = None,
    captured_end: dt.datetime | None = None,
) -> ClockCheck:
    """Compare the device's stated time with the agent's receipt time; return the verdict.

    ``captured_end`` (the footage's own end time, on the device's clock) is checked against
    the receipt: footage cannot end after it was received, beyond the bound.
    """
    offset = None
    reasons = []
    if device_time is not None:
        offset = round((device_time - received_at).total_seconds(), 3)
        if abs(offset) > bound_s:
            direction = "fast" if offset > 0 else "slow"
            reasons.append(f"device clock is {abs(offset):.3f} s {direction} (bound {bound_s:g} s)")
    if captured_end is not None:
        ahead = (captured_end - received_at).total_seconds()
        if ahead > bound_s:
            reasons.append(f"capture ends {ahead:.3f} s after the agent received it")
    return ClockCheck(
        received_at=received_at,
        bound_s=bound_s,
        device_time=device_time,
        offset_s=offset,
        flagged=bool(reasons),
        reason="; ".join(reasons) or None,
    )


__all__ = ["ClockCheck", "check_clock"]
