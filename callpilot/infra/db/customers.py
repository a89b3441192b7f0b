"""The one customer directory: a caller's profile by caller ID, for the IVR (lookup nodes) and
the ACD (routing attributes) alike.

A caller ID may arrive as ``+82 10-1234``, ``82101234`` or ``+82101234`` while the table holds
one of them: :func:`phone_keys` lists the spellings and one indexed ``IN`` query tries them all.

Measured on SQLite: a Core primary-key select costs ~0.05 ms, while a hop to a worker thread
costs 2-3 ms under load (GIL contention with the record writer) and sat on the path from queue
entry to the agent's phone ringing.  So the lookup runs inline, and a small TTL cache spares
repeat callers even that.  (A PostgreSQL round trip on a LAN is ~0.3 ms.)

On a caller's path the select still cost ~0.34 ms (cold code and caches between calls), so a
caller straight to a queue is looked up ahead (:meth:`CustomerDirectory.prefetch`, on AMI's
Newchannel a few ms before the StasisStart) and the queue entry finds the answer cached
(docs/decisions.md D36).
"""
from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from callpilot.infra.db.models import Customer

logger = logging.getLogger(__name__)

_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}   # sqlite3, psycopg
_LOOKUP = select(Customer.phone, Customer.name, Customer.birth_year, Customer.segment,
                 Customer.language).where(Customer.phone.in_(bindparam("keys", expanding=True)))


@dataclass(frozen=True)
class CustomerProfile:
    phone: str
    name: str = ""
    birth_year: int | None = None
    segment: str = "standard"
    language: str = "en"

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def phone_keys(phone: str) -> list[str]:
    """Ways a caller ID may be stored: as given, digits only, with a leading +."""
    digits = re.sub(r"\D", "", phone)
    return list(dict.fromkeys(k for k in (phone, digits, f"+{digits}") if k and k != "+"))


class LookupFailed(Exception):
    """The database could not answer (the caller may or may not be known)."""


PREFETCH_PER_SECOND = 50     # lookups ahead of a call per second at most (beyond: at entry)


class CustomerDirectory:
    def __init__(self, engine: Engine, *, ttl: float = 60.0, size: int = 10_000,
                 prefetch_per_second: int = PREFETCH_PER_SECOND):
        self.engine = engine
        self.ttl, self.size = ttl, size
        self._cache: OrderedDict[str, tuple[float, CustomerProfile | None]] = OrderedDict()
        self.prefetch_per_second = prefetch_per_second
        self._prefetch_window = (0, 0)     # (second, prefetches in it)
        self._held: tuple[int, Any] | None = None    # (thread, its own driver connection)

    def lookup(self, phone: str) -> CustomerProfile | None:
        """The caller's profile, or None for an unknown number.  Raises LookupFailed when the
        database fails (not cached: the next call tries again)."""
        if not phone:
            return None
        hit = self._cache.get(phone)
        if hit is not None and time.monotonic() - hit[0] < self.ttl:
            return hit[1]
        profile = self._query(phone)
        self._remember(phone, profile)
        return profile

    def lookup_or_none(self, phone: str) -> CustomerProfile | None:
        """For routing: a failed lookup routes the call without profile attributes."""
        try:
            return self.lookup(phone)
        except LookupFailed:
            logger.exception("profile lookup for %s failed: routing without it", phone)
            return None

    def prefetch(self, phone: str) -> None:
        """Look ``phone`` up ahead of its call, into the cache the call's own lookup reads.
        At most ``prefetch_per_second`` a second: a flood of channels that never reach the
        queue costs the loop no more than that (the calls beyond it are looked up at entry,
        as without prefetching).  A failure is left to the call's own lookup (nothing is
        cached); neither the number nor the driver's message (it quotes the parameters) is
        logged."""
        second = int(time.monotonic())
        window, done = self._prefetch_window
        done = done + 1 if window == second else 1
        self._prefetch_window = (second, done)
        if done > self.prefetch_per_second:
            return
        try:
            self.lookup(phone)
        except LookupFailed as exc:
            logger.warning("profile prefetch failed (%s): the call looks up again",
                           type(exc.__cause__).__name__)

    def _remember(self, phone: str, profile: CustomerProfile | None) -> None:
        self._cache[phone] = (time.monotonic(), profile)
        self._cache.move_to_end(phone)
        while len(self._cache) > self.size:
            self._cache.popitem(last=False)

    def _query(self, phone: str) -> CustomerProfile | None:
        keys = phone_keys(phone)
        try:
            rows = {r[0]: r for r in self._select(keys)}
        except (SQLAlchemyError, self._driver_error()) as exc:
            raise LookupFailed(f"customer lookup failed: {exc}") from exc
        row = next((rows[k] for k in keys if k in rows), None)   # the exact spelling first
        if row is None:
            return None
        phone_, name, birth_year, segment, language = row
        return CustomerProfile(phone=phone_, name=name, birth_year=birth_year, segment=segment,
                               language=language)

    def _select(self, keys: list[str]) -> list[tuple]:
        """The one indexed select, straight on a driver connection: through the ORM's Core
        layer the same select cost ~90 us against ~20 us (SQLite, a hot loop; 3-4 times that
        on a caller's path), and it runs on the event loop on every queue entry (D20).  The
        loop's thread keeps a connection of its own, out of the pool: a pool checkout and
        return (events, reset) was ~60 % of the select's cost on a caller's path (D36).
        Drivers of another parameter style go through Core."""
        mark = _PLACEHOLDERS.get(getattr(self.engine.dialect, "paramstyle", ""))
        if mark is None:
            with self.engine.connect() as conn:
                return [tuple(r) for r in conn.execute(_LOOKUP, {"keys": keys})]
        sql = (f"SELECT phone, name, birth_year, segment, language FROM {Customer.__tablename__} "
               f"WHERE phone IN ({', '.join([mark] * len(keys))})")
        held = self._held
        if held is not None and held[0] == threading.get_ident():
            try:
                return _fetch(held[1], sql, keys)
            except Exception:  # noqa: BLE001  (dropped by the server, or broken: a fresh one
                self.close()   # below, as the pool's pre-ping would have given)
        raw = self.engine.raw_connection()
        if self._held is None:          # the first thread to look up keeps it (serve's loop)
            raw.detach()                # out of the pool: its slot is free for the others
            self._held = (threading.get_ident(), raw.dbapi_connection)
            return _fetch(raw.dbapi_connection, sql, keys)
        try:
            return _fetch(raw, sql, keys)
        finally:
            raw.close()

    def close(self) -> None:
        """Close the connection the loop's thread holds (the next lookup opens another)."""
        held, self._held = self._held, None
        if held is not None:
            try:
                held[1].close()
            except Exception:  # noqa: BLE001  (a connection already broken)
                logger.debug("customer lookup connection close failed", exc_info=True)

    def _driver_error(self) -> type[Exception]:
        dbapi = getattr(getattr(self.engine, "dialect", None), "dbapi", None)
        return getattr(dbapi, "Error", SQLAlchemyError)


def _fetch(conn: Any, sql: str, keys: list[str]) -> list[tuple]:
    """Run the select on a driver connection and end its transaction (as a pool's return
    would: a PostgreSQL connection must not sit idle in one)."""
    cursor = conn.cursor()
    try:
        cursor.execute(sql, tuple(keys))
        return list(cursor.fetchall())
    finally:
        cursor.close()
        conn.rollback()
