"""Caller profiles by caller ID, on the call path: a primary-key lookup done inline.

Measured on SQLite: a Core primary-key select costs ~0.05 ms, while a hop to a worker thread
costs 2-3 ms under load (GIL contention with the record writer) and sat on the path from
queue entry to the agent's phone ringing.  So the lookup runs on the event loop, and a small
TTL cache spares repeat callers even that.  (A PostgreSQL round trip on a LAN is ~0.3 ms.)
"""
from __future__ import annotations

import logging
import time
from collections import OrderedDict

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from acd.ticket import CallerProfile
from callpilot.infra.db.models import Customer

logger = logging.getLogger(__name__)

_LOOKUP = select(Customer.name, Customer.birth_year, Customer.segment, Customer.language) \
    .where(Customer.phone == bindparam("phone"))


class ProfileDirectory:
    def __init__(self, engine: Engine, *, ttl: float = 60.0, size: int = 10_000):
        self.engine = engine
        self.ttl, self.size = ttl, size
        self._cache: OrderedDict[str, tuple[float, CallerProfile | None]] = OrderedDict()

    def lookup(self, phone: str) -> CallerProfile | None:
        """The caller's profile, or None for an unknown number (or a database error: the
        call is then routed without profile attributes rather than not at all)."""
        if not phone:
            return None
        hit = self._cache.get(phone)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        profile = self._query(phone)
        self._cache[phone] = (time.monotonic(), profile)
        self._cache.move_to_end(phone)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)
        return profile

    def _query(self, phone: str) -> CallerProfile | None:
        try:
            with self.engine.connect() as conn:
                row = conn.execute(_LOOKUP, {"phone": phone}).first()
        except SQLAlchemyError:
            logger.exception("profile lookup for %s failed: routing without it", phone)
            return None
        if row is None:
            return None
        return CallerProfile(phone=phone, name=row.name, birth_year=row.birth_year,
                             segment=row.segment, language=row.language)
