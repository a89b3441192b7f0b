"""Calling window in the CALLED PARTY's local time.

US Telemarketing Sales Rule, 16 CFR 310.4(c): no calls before 8 a.m. or after 9 p.m. *local
time at the called person's location*.  Some dialers check the server's clock; here every
decision converts ``now`` into the contact's own IANA zone (``zoneinfo``, DST included).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from outbound.model import CallingWindow

MAX_DAYS_AHEAD = 400      # a window that never opens within this is reported as never


def _bounds(day, window: CallingWindow, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return (datetime.combine(day, window.start, tzinfo=zone),
            datetime.combine(day, window.end, tzinfo=zone))


def next_open(now: datetime, zone: ZoneInfo, window: CallingWindow) -> datetime | None:
    """The earliest instant >= ``now`` at which the contact may be called (None: never).

    ``now`` is timezone-aware; the result is in the contact's zone (compare instants, not
    wall clocks)."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(zone)
    for offset in range(MAX_DAYS_AHEAD):
        day = local.date() + timedelta(days=offset)
        if day in window.excluded:
            continue
        start, end = _bounds(day, window, zone)
        if local < end:
            return max(local, start)
    return None


def is_open(now: datetime, zone: ZoneInfo, window: CallingWindow) -> bool:
    opens = next_open(now, zone, window)
    return opens is not None and opens <= now
