"""The device-clock check keeps both readings and flags offsets beyond the bound."""

from __future__ import annotations

import datetime as dt

from ingest.clock import check_clock

T = dt.datetime(2026, 11, 25, 15, 0, tzinfo=dt.timezone.utc)


def test_within_bound_is_not_flagged() -> None:
    c = check_clock(received_at=T, bound_s=2, device_time=T + dt.timedelta(seconds=1.5))
    assert c.offset_s == 1.5 and not c.flagged


def test_fast_and_slow_devices_are_flagged() -> None:
    fast = check_clock(received_at=T, bound_s=2, device_time=T + dt.timedelta(seconds=95))
    assert fast.flagged and fast.offset_s == 95 and "fast" in (fast.reason or "")
    slow = check_clock(received_at=T, bound_s=2, device_time=T - dt.timedelta(hours=1))
    assert slow.flagged and slow.offset_s == -3600 and "slow" in (slow.reason or "")
    assert slow.to_dict()["device_time"] == (T - dt.timedelta(hours=1)).isoformat()


def test_footage_ending_in_the_future_is_flagged_without_a_device_clock() -> None:
    c = check_clock(received_at=T, bound_s=2, captured_end=T + dt.timedelta(minutes=5))
    assert c.flagged and c.offset_s is None and "after the agent received it" in (c.reason or "")


def test_no_readings_no_flag() -> None:
    c = check_clock(received_at=T, bound_s=2)
    assert not c.flagged and c.to_dict()["device_time"] is None
