"""The audit log: every change made through the web is written with who, when, what,
before and after (blueprint ``audit`` shows it)."""
from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, g, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_web import db
from admin_web.accounts import now
from admin_web.security import require
from callpilot.infra.db.web_users import AuditEntry

logger = logging.getLogger(__name__)

bp = Blueprint("audit", __name__, url_prefix="/audit")

PAGE = 100


def record(session: Session, entity: str, entity_id: str, action: str,
           before: Any = None, after: Any = None, detail: str = "") -> None:
    """Add an entry for the logged-in user; committed with the change it describes."""
    actor = g.user.username if g.get("user") is not None else "?"
    session.add(AuditEntry(at=now(), actor=actor, entity=entity, entity_id=entity_id,
                           action=action, before=before, after=after, detail=detail))
    logger.info("audit: %s %s %s %s", actor, action, entity, entity_id)


def snapshot(row: Any, exclude: tuple[str, ...] = ()) -> dict[str, Any]:
    """A row's columns as JSON-able values (for before/after); secrets are excluded by the caller."""
    values = {}
    for column in row.__table__.columns:
        if column.key not in exclude:
            value = getattr(row, column.key)
            values[column.key] = value.isoformat() if hasattr(value, "isoformat") else value
    return values


def entries(session: Session, entity: str | None = None, entity_id: str | None = None,
            limit: int = PAGE) -> list[AuditEntry]:
    query = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)
    if entity:
        query = query.where(AuditEntry.entity == entity)
    if entity_id:
        query = query.where(AuditEntry.entity_id == entity_id)
    return list(session.scalars(query))


@bp.get("/")
@require("audit.view")
def index():
    rows = entries(db.get(), request.args.get("entity"), request.args.get("id"))
    return render_template("audit/index.html", rows=rows)
