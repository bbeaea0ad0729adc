"""Which refused requests become custody events one by one, and which are summed.

Every refusal is evidence and goes into the custody ledger (vault/casework/policy.py,
vault/access/identity.py). A refusal that names nobody (no token, a malformed or unknown one) costs
the sender nothing, though, and each one is a durable ledger write: a client that repeats it,
by mistake or to flood the ledger, would drown the events that matter and slow every other
writer. So anonymous refusals pass through a :class:`DenialThrottle`, per client address:

- the first ``burst`` refusals in a ``window`` are logged one by one, as before;
- the rest are counted, by reason, and logged as **one** ``access_denied`` event when the
  window closes (``details.summary``: how many, of which reasons, first and last time), so the
  ledger still accounts for every refusal, in aggregate (the event's ``client_addr`` is the
  address);
- refusals that name a user or token (expired, revoked, disabled) are never summed: they are
  about one identifiable credential.

Closed windows are written out when the next refusal or successful sign-in comes, and by
:meth:`DenialThrottle.flush` (the API calls it at shutdown). Beyond ``max_addresses``
addresses in one window (a spray from many addresses), the overflow shares one window,
keyed ``*``, so memory stays bounded.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field

__all__ = ["DenialSummary", "DenialThrottle"]

OVERFLOW = "*"


@dataclass
class _Window:
    start: dt.datetime
    logged: int = 0
    last: dt.datetime | None = None
    suppressed: Counter[str] = field(default_factory=Counter)


@dataclass(frozen=True)
class DenialSummary:
    """Refusals from one address that were counted instead of logged one by one."""

    client_addr: str
    count: int
    by_reason: dict[str, int]
    window_start: dt.datetime  # the window's first refusal (itself logged on its own)
    last: dt.datetime

    def details(self) -> dict[str, object]:
        """The ``access_denied`` event's details (JSON-ready, no floats)."""
        return {
            "reason": "authentication: repeated refusals, summarised",
            "summary": {
                "count": self.count,
                "by_reason": dict(sorted(self.by_reason.items())),
                "window_start": self.window_start.isoformat(),
                "last": self.last.isoformat(),
            },
        }


class DenialThrottle:
    """Per-address budget of anonymous refusals logged one by one (thread-safe)."""

    def __init__(self, *, burst: int = 20, window: dt.timedelta = dt.timedelta(minutes=1),
                 max_addresses: int = 10_000) -> None:
        if burst < 1 or window <= dt.timedelta(0) or max_addresses < 1:
            raise ValueError("burst and max_addresses must be >= 1 and window > 0")
        self.burst = burst
        self.window = window
        self.max_addresses = max_addresses
        self._windows: OrderedDict[str, _Window] = OrderedDict()  # oldest start first
        self._lock = threading.Lock()

    def admit(self, client_addr: str | None, reason: str, now: dt.datetime,
              ) -> tuple[bool, list[DenialSummary]]:
        """Count one anonymous refusal; return whether to log it on its own, and the
        summaries of windows that have closed by ``now`` (to be logged by the caller)."""
        addr = client_addr or "unknown"
        with self._lock:
            due = self._close(now)
            win = self._windows.get(addr)
            if win is None:
                if len(self._windows) >= self.max_addresses:
                    addr = OVERFLOW
                    win = self._windows.get(addr)
                if win is None:
                    win = self._windows[addr] = _Window(start=now)
            if win.logged < self.burst:
                win.logged += 1
                return True, due
            win.suppressed[reason] += 1
            win.last = now
            return False, due

    def flush(self, now: dt.datetime | None = None) -> list[DenialSummary]:
        """Summaries of the windows closed by ``now``; of every window when ``now`` is None."""
        with self._lock:
            return self._close(now)

    def _close(self, now: dt.datetime | None) -> list[DenialSummary]:
        out: list[DenialSummary] = []
        while self._windows:
            addr, win = next(iter(self._windows.items()))
            if now is not None and win.start + self.window > now:
                break  # windows are kept in start order: the rest are younger
            del self._windows[addr]
            if win.suppressed and win.last is not None:
                out.append(DenialSummary(addr, sum(win.suppressed.values()),
                                         dict(win.suppressed), win.start, win.last))
        return out
