"""testkit.customer.noon_zone: the test contacts' zone, where it is noon whatever the hour."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, available_timezones

import pytest

from testkit.customer import noon_zone


@pytest.mark.parametrize("hour", range(24))
def test_it_is_noon_in_the_zone_at_every_hour(hour):
    now = datetime(2026, 12, 2, hour, 16, tzinfo=timezone.utc)
    zone = noon_zone(now)
    assert zone in available_timezones()
    assert now.astimezone(ZoneInfo(zone)).hour == 12


def test_a_three_hour_run_stays_inside_the_default_calling_window():
    start = datetime(2026, 12, 2, 2, 16, tzinfo=timezone.utc)    # 21:16 in New York: shut there
    local = ZoneInfo(noon_zone(start))
    for minutes in range(0, 180, 15):
        assert 8 <= (start + timedelta(minutes=minutes)).astimezone(local).hour < 21
