"""Web accounts (admin only): list, create with a role and a generated password shown once,
new password, deactivate.  Audited (passwords never are)."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from sqlalchemy import select

from admin_web import accounts, audit, db
from admin_web.security import ROLES, generate_password, hash_password, require
from callpilot.infra.db.web_users import WebUser

logger = logging.getLogger(__name__)

bp = Blueprint("users", __name__, url_prefix="/users")

SECRET_COLUMNS = ("password_hash",)


def _user(user_id: int) -> WebUser:
    user = db.get().get(WebUser, user_id)
    if user is None:
        abort(404)
    return user


@bp.get("/")
@require("users.manage")
def index():
    users = db.get().scalars(select(WebUser).order_by(WebUser.username)).all()
    return render_template("users/index.html", users=users, roles=ROLES, shown=None)


@bp.post("/")
@require("users.manage")
def new():
    session = db.get()
    password = generate_password()
    try:
        user = accounts.create_user(session, request.form.get("username", "").strip(), password,
                                    request.form.get("role", ""), request.form.get("agent_extension", "").strip() or None)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("users.index"))
    audit.record(session, "user", user.username, "create", None, audit.snapshot(user, SECRET_COLUMNS))
    session.commit()
    return _shown(user, password)


@bp.post("/<int:user_id>/password")
@require("users.manage")
def new_password(user_id: int):
    user = _user(user_id)
    password = generate_password()
    user.password_hash = hash_password(password)
    session = db.get()
    audit.record(session, "user", user.username, "new_password", detail="password replaced")
    session.commit()
    return _shown(user, password)


@bp.post("/<int:user_id>/active")
@require("users.manage")
def set_active(user_id: int):
    user = _user(user_id)
    if user.id == g.user.id:
        flash("You cannot deactivate your own account.", "error")
        return redirect(url_for("users.index"))
    before = audit.snapshot(user, SECRET_COLUMNS)
    user.active = request.form.get("active") == "1"
    session = db.get()
    audit.record(session, "user", user.username, "update", before, audit.snapshot(user, SECRET_COLUMNS))
    session.commit()
    return redirect(url_for("users.index"))


def _shown(user: WebUser, password: str):
    """In the POST's own response (never flashed into the cookie), not cached."""
    users = db.get().scalars(select(WebUser).order_by(WebUser.username)).all()
    page = render_template("users/index.html", users=users, roles=ROLES, shown=(user.username, password))
    return page, 200, {"Cache-Control": "no-store"}
