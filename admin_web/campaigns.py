"""Outbound campaigns: create (the form of ``campaign_form``, checked by outbound like
``callpilot campaigns create``, with a preview of the message), list, results (totals,
outcomes, contacts), start / pause / resume / finish, contacts CSV upload with a report per
row; run by serve.  Every change is audited."""
from __future__ import annotations

import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from sqlalchemy import select

from admin_web import audit, campaign_form, db
from admin_web.security import require
from callpilot.infra.db.calendars import CalendarRow
from callpilot.infra.db.campaigns import Campaign
from callpilot.infra.db.models import Queue

logger = logging.getLogger(__name__)

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")

CONTACTS_SHOWN = 200


def _campaigns():
    from admin_web.app import services
    campaigns = services().campaigns
    if campaigns is None:
        abort(503, "campaigns are not available")
    return campaigns


@bp.get("/")
@require("campaigns.view")
def index():
    rows = db.get().scalars(select(Campaign).order_by(Campaign.name)).all()
    return render_template("campaigns/index.html", rows=rows)


@bp.get("/new")
@require("campaigns.edit")
def new():
    form = _form()
    campaign_form.set_defaults(form, _campaigns().defaults())
    return render_template("campaigns/new.html", form=form, preview=None)


@bp.post("/new")
@require("campaigns.edit")
def create():
    form = _form()
    if not form.validate_on_submit():            # the CSRF token; the fields are outbound's to check
        return render_template("campaigns/new.html", form=form, preview=None), 400
    campaigns = _campaigns()
    try:
        preview = campaigns.preview(form.template.data, campaign_form.sample(form), campaign_form.keys(form))
        if request.form.get("action") == "preview":
            return render_template("campaigns/new.html", form=form, preview=preview)
        campaigns.create(form.name.data.strip(), form.template.data, campaign_form.fields(form))
    except ValueError as exc:
        return render_template("campaigns/new.html", form=form, preview=None, problem=str(exc)), 400
    _audit_created(form.name.data.strip())
    flash(f"Campaign {form.name.data.strip()} created (draft): upload its contacts, then start it.", "ok")
    return redirect(url_for("campaigns.show", name=form.name.data.strip()))


def _form() -> campaign_form.CampaignForm:
    form = campaign_form.CampaignForm()
    session = db.get()
    form.queue.choices = [(q, q) for q in session.scalars(select(Queue.name).order_by(Queue.name))] or [
        ("general", "general")]
    form.calendar.choices = [("", "(none)")] + [(c, c) for c in session.scalars(
        select(CalendarRow.name).order_by(CalendarRow.name))]
    return form


def _audit_created(name: str) -> None:
    session = db.get()
    row = session.scalar(select(Campaign).where(Campaign.name == name))
    audit.record(session, "campaign", name, "create", None, audit.snapshot(row))
    session.commit()


@bp.get("/<name>")
@require("campaigns.view")
def show(name: str, imported: dict | None = None):
    try:
        report = _campaigns().report(name)
    except ValueError:
        abort(404)
    return render_template("campaigns/show.html", report=report, imported=imported,
                           contacts=report["contacts"][:CONTACTS_SHOWN])


@bp.post("/<name>/state")
@require("campaigns.edit")
def set_state(name: str):
    action = request.form.get("action", "")
    before = _state(name)
    try:
        state = _campaigns().set_state(name, action)
    except ValueError as exc:
        flash(str(exc), "error")
        return redirect(url_for("campaigns.show", name=name))
    session = db.get()
    audit.record(session, "campaign", name, action, {"state": before}, {"state": state})
    session.commit()
    flash(f"Campaign {name} is {state}.", "ok")
    return redirect(url_for("campaigns.show", name=name))


def _state(name: str) -> str | None:
    return db.get().scalar(select(Campaign.state).where(Campaign.name == name))


@bp.post("/<name>/contacts")
@require("campaigns.edit")
def import_contacts(name: str):
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        flash("Choose a CSV file.", "error")
        return redirect(url_for("campaigns.show", name=name))
    try:
        text = upload.read().decode("utf-8-sig")
        result = _campaigns().import_csv(name, text, request.form.get("region", "US").strip().upper() or "US")
    except (UnicodeDecodeError, ValueError) as exc:
        flash(f"Not imported: {exc}", "error")
        return redirect(url_for("campaigns.show", name=name))
    session = db.get()
    audit.record(session, "campaign", name, "import_contacts", None,
                 {"imported": result["imported"], "rejected": result["rejected"]}, upload.filename)
    session.commit()
    return show(name, imported=result)
