"""When a contact is tried again, per outcome of its last attempt."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Mapping

from outbound.model import FINAL_OUTCOMES, ContactOutcome


def next_attempt_at(outcome: ContactOutcome, attempts_made: int, max_attempts: int,
                    delays: Mapping[str, int], now: datetime) -> datetime | None:
    """The earliest time of the next attempt, or None when the contact is finished: a final
    outcome, no attempts left, or no retry delay configured for this outcome."""
    if outcome in FINAL_OUTCOMES or attempts_made >= max_attempts:
        return None
    seconds = delays.get(outcome.value)
    if seconds is None:
        return None
    return now + timedelta(seconds=max(0, int(seconds)))
