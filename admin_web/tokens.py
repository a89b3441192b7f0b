"""API tokens for machines: created by a logged-in user (shown once), revocable; a request
with ``Authorization: Bearer <token>`` acts as that user, with that user's role."""
from __future__ import annotations

import hashlib
import logging
import secrets

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select
from sqlalchemy.orm import Session

from admin_web import audit, db
from admin_web.accounts import now
from callpilot.infra.db.web_users import ApiToken, WebUser

logger = logging.getLogger(__name__)

bp = Blueprint("tokens", __name__, url_prefix="/tokens")

PREFIX = "cp_"


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create(session: Session, user: WebUser, name: str) -> str:
    token = PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, name=name, token_sha256=digest(token), created_at=now()))
    return token


def user_for(session: Session, token: str) -> WebUser | None:
    """The active user of a valid, unrevoked token (its last use is recorded)."""
    row = session.scalar(select(ApiToken).where(ApiToken.token_sha256 == digest(token)))
    if row is None or row.revoked:
        return None
    user = session.get(WebUser, row.user_id)
    if user is None or not user.active:
        return None
    row.last_used_at = now()
    session.commit()
    return user


def _login_required():
    if g.get("user") is None:
        return redirect(url_for("auth.login", next=request.path))
    return None


@bp.get("/")
def index():
    if (response := _login_required()) is not None:
        return response
    rows = db.get().scalars(select(ApiToken).where(ApiToken.user_id == g.user.id)
                            .order_by(ApiToken.id.desc())).all()
    return render_template("tokens/index.html", rows=rows, token=None)


@bp.post("/")
def new():
    if (response := _login_required()) is not None:
        return response
    session = db.get()
    name = request.form.get("name", "").strip()[:100] or "token"
    token = create(session, g.user, name)
    audit.record(session, "user", g.user.username, "create_api_token", detail=name)
    session.commit()
    rows = session.scalars(select(ApiToken).where(ApiToken.user_id == g.user.id).order_by(ApiToken.id.desc())).all()
    return render_template("tokens/index.html", rows=rows, token=token), 200, {"Cache-Control": "no-store"}


@bp.post("/<int:token_id>/revoke")
def revoke(token_id: int):
    if (response := _login_required()) is not None:
        return response
    session = db.get()
    row = session.get(ApiToken, token_id)
    if row is None or row.user_id != g.user.id:
        abort(404)
    row.revoked = True
    audit.record(session, "user", g.user.username, "revoke_api_token", detail=row.name)
    session.commit()
    flash(f"Token {row.name} revoked.", "ok")
    return redirect(url_for("tokens.index"))
