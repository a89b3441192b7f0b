"""Engine and session factory; schema migrated to the newest revision on start.

URLs: ``sqlite:///path`` (default, one node) or ``postgresql+psycopg://...`` (psycopg 3, for
several nodes); a bare ``postgresql://`` or ``postgres://`` URL is read as psycopg 3 too.
"""
from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path

from sqlalchemy import create_engine, event
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.orm import sessionmaker

from callpilot.infra.db import migrations
from callpilot.infra.db import calendars, campaigns, models, surveys  # noqa: F401  (registers the tables)

logger = logging.getLogger(__name__)

SQLITE_BUSY_MS = 5000


def normalize_url(url: str | URL) -> URL:
    """Pin PostgreSQL URLs to psycopg 3, the driver the project installs."""
    url = make_url(url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


def dialect_of(url: str | URL) -> str:
    """``sqlite`` or ``postgresql``: the backend a URL names."""
    return normalize_url(url).get_backend_name()


def make_engine(url: str | URL) -> Engine:
    url = normalize_url(url)
    # pre-ping catches a PostgreSQL server that dropped idle connections; a SQLite file
    # cannot "drop" one, and the extra SELECT 1 would sit on every caller-profile lookup.
    engine = create_engine(url, pool_pre_ping=url.get_backend_name() != "sqlite")
    if engine.dialect.name == "sqlite":
        _private_file(url.database)
        event.listen(engine, "connect", _sqlite_pragmas)
    return engine


def _private_file(database: str | None) -> None:
    """The SQLite file holds the agents' SIP digest credentials: owner only (0600).  SQLite
    gives its -wal and -shm files the database file's mode."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database)
    if not path.parent.is_dir():
        return                  # create_engine's first connect reports it
    # Never open() an existing database file here: closing any descriptor of it drops every
    # POSIX lock this process holds on it (SQLite's documented hazard), so another engine's
    # open connection could lose its locks -> "database disk image is malformed".
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))   # new: nobody holds it
    except FileExistsError:
        if path.stat().st_mode & 0o077:
            os.chmod(path, 0o600)


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_MS}")
    _sqlite_wal(cur)
    cur.execute("PRAGMA foreign_keys=ON")
    # Under WAL, NORMAL never corrupts the database; only the last commits can be lost on
    # power loss (not on a process crash).  FULL fsyncs every commit: ~2 ms per call event.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _sqlite_wal(cur) -> None:
    """WAL mode (persistent in the file).  Switching needs the file to itself and SQLite may
    answer "database is locked" at once, without waiting, when several processes open a new
    database together: retry within the busy timeout."""
    deadline = time.monotonic() + SQLITE_BUSY_MS / 1000
    while True:
        try:
            cur.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def create_schema(engine: Engine) -> None:
    """Create or migrate the schema to head (see callpilot.infra.db.migrations)."""
    migrations.upgrade(engine)
    logger.info("schema ready on %s", engine.url.render_as_string(hide_password=True))


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
