"""The web app's database handle: one engine per app, one session per request (``g.db``)."""
from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy.orm import Session

from callpilot.infra.db import session as db

EXTENSION = "callpilot_db"


def init_app(app: Flask, url: str) -> None:
    engine = db.make_engine(url)
    db.create_schema(engine)
    app.extensions[EXTENSION] = db.make_sessionmaker(engine)
    app.teardown_appcontext(_close)


def sessions():
    return current_app.extensions[EXTENSION]


def get() -> Session:
    if "db" not in g:
        g.db = sessions()()
    return g.db


def _close(_exc: BaseException | None) -> None:
    session = g.pop("db", None)
    if session is not None:
        session.close()


def dispose(app: Flask) -> None:
    """Close the engine's connections (tests and shutdown)."""
    app.extensions[EXTENSION].kw["bind"].dispose()
