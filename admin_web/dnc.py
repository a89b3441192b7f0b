"""Do-not-call list: numbers no campaign may dial (scope ``*``) or one campaign may not.
Numbers are E.164 (``+8210...``), as the outbound campaigns store them.  Audited."""
from __future__ import annotations

import logging

import phonenumbers
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from admin_web import audit, db
from admin_web.accounts import now
from admin_web.security import require
from callpilot.infra.db.campaigns import GLOBAL_DNC, Campaign, DncEntry

logger = logging.getLogger(__name__)

bp = Blueprint("dnc", __name__, url_prefix="/dnc")

PAGE = 500


def e164(raw: str) -> str | None:
    """The number in E.164, or None if it is not a valid international number."""
    try:
        number = phonenumbers.parse(raw.strip(), None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


@bp.get("/")
@require("dnc.view")
def index():
    session = db.get()
    phone = request.args.get("phone", "").strip()
    query = select(DncEntry).order_by(DncEntry.added_at.desc()).limit(PAGE)
    if phone:
        query = query.where(DncEntry.phone.startswith(phone))
    campaigns = session.scalars(select(Campaign.name).order_by(Campaign.name)).all()
    return render_template("dnc/index.html", rows=session.scalars(query).all(), phone=phone,
                           campaigns=campaigns, everyone=GLOBAL_DNC)


@bp.post("/")
@require("dnc.edit")
def add():
    phone = e164(request.form.get("phone", ""))
    scope = request.form.get("scope", GLOBAL_DNC) or GLOBAL_DNC
    if phone is None:
        flash("Give the number in international form, e.g. +821012345678.", "error")
        return redirect(url_for("dnc.index"))
    session = db.get()
    if session.get(DncEntry, (phone, scope)) is None:
        entry = DncEntry(phone=phone, scope=scope, reason=request.form.get("reason", "").strip()[:64] or "web",
                         added_at=now())
        session.add(entry)
        audit.record(session, "dnc", phone, "add", None, {"phone": phone, "scope": scope, "reason": entry.reason})
        session.commit()
    flash(f"{phone} will not be called" + (" by any campaign." if scope == GLOBAL_DNC else f" by {scope}."), "ok")
    return redirect(url_for("dnc.index"))


@bp.post("/remove")
@require("dnc.edit")
def remove():
    session = db.get()
    entry = session.get(DncEntry, (request.form.get("phone", ""), request.form.get("scope", "")))
    if entry is None:
        abort(404)
    audit.record(session, "dnc", entry.phone, "remove",
                 {"phone": entry.phone, "scope": entry.scope, "reason": entry.reason}, None)
    session.delete(entry)
    session.commit()
    flash(f"{entry.phone} removed from the do-not-call list.", "ok")
    return redirect(url_for("dnc.index"))
