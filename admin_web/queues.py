"""Queues: service-level target, overflow, announcements, routing steps.

serve reads the queues table when it starts (``acd.roster_store.load_queues``) and again
when the web tells it a queue changed (status socket ``POST /reload/queues``).  Opening hours are a calendar (imported with the CLI,
listed on the calendars page).  The callback offer (estimated-wait threshold, offer key,
customer first) is per queue here, an empty field meaning the configuration's ``[callbacks]``.
The periodic announcement and the closed message have a text per language besides their
default (``admin_web.queue_texts``, D31).
"""
from __future__ import annotations

import json
import logging
import re

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, IntegerField, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, NumberRange, Optional, Regexp, ValidationError

from admin_web import audit, db, queue_texts
from admin_web.security import require
from callpilot.infra.db.calendars import CalendarRow
from callpilot.infra.db.models import Queue

logger = logging.getLogger(__name__)

bp = Blueprint("queues", __name__, url_prefix="/queues")

NAME = r"[A-Za-z0-9_-]{1,64}"
KEYS = "0123456789*#"
CUSTOMER_FIRST = (("yes", "the customer, then the agent"), ("no", "the agent (whisper), then the customer"))


class QueueForm(FlaskForm):
    title = StringField("Title")
    skill = StringField("Skill", validators=[Optional(), Regexp(NAME)],
                        description="empty: the queue's own name")
    sl_target_seconds = IntegerField("Service level: answered within (s)", validators=[NumberRange(1, 3600)])
    sl_target_percent = IntegerField("Service level: target %", validators=[NumberRange(1, 100)])
    max_wait_seconds = IntegerField("Max wait (s), 0 = forever", validators=[NumberRange(0, 86400)])
    overflow_queue = SelectField("Overflow to", choices=[])
    join_empty = BooleanField("Callers may join with no agent logged in")
    announce_frequency = IntegerField("Announcement every (s), 0 = off", validators=[NumberRange(0, 3600)])
    announce_position = BooleanField("Announce position and expected wait")
    periodic_announce = TextAreaField("Periodic announcement text", validators=[Length(max=queue_texts.MAX_TEXT)],
                                      description="the default: for callers whose language has no text below")
    steps = TextAreaField("Routing steps (JSON; empty = default: the queue's skill, then anyone)")
    calendar = SelectField("Opening hours (calendar)", choices=[], description="none: always open")
    closed_queue = SelectField("When closed, send callers to", choices=[])
    closed_message = TextAreaField("When closed (and no queue above), say",
                                   validators=[Length(max=queue_texts.MAX_TEXT)],
                                   description="the default for languages with no text below; "
                                               "empty: the built-in closed message")
    survey_flow = SelectField("Post-call survey flow", choices=[], description="run when the agent hangs up")
    callback_offer_after = IntegerField("Offer a callback when the estimated wait exceeds (s)",
                                        validators=[Optional(), NumberRange(0, 86400)])
    callback_offer_key = SelectField("Callback offer key", choices=[])
    callback_customer_first = SelectField("Callback: who is rung first", choices=[])

    def validate_steps(self, field) -> None:
        if not (field.data or "").strip():
            return
        try:
            data = json.loads(field.data)
        except json.JSONDecodeError as exc:
            raise ValidationError(f"not valid JSON: {exc.msg} (line {exc.lineno})") from None
        check = _services().check_queue_steps
        problem = check(data) if check else None
        if problem:
            raise ValidationError(problem)


FIELDS = ("title", "skill", "sl_target_seconds", "sl_target_percent", "max_wait_seconds",
          "join_empty", "announce_frequency", "announce_position", "periodic_announce", "closed_message")
OPTIONAL_NAMES = ("overflow_queue", "calendar", "closed_queue", "survey_flow")   # "" -> NULL


def _queue(name: str) -> Queue:
    queue = db.get().get(Queue, name)
    if queue is None:
        abort(404)
    return queue


@bp.get("/")
@require("queues.view")
def index():
    queues = db.get().scalars(select(Queue).order_by(Queue.name)).all()
    return render_template("queues/index.html", queues=queues)


@bp.get("/<name>")
@require("queues.view")
def edit(name: str):
    queue = _queue(name)
    form = _form(queue)
    for field in OPTIONAL_NAMES:
        getattr(form, field).data = getattr(queue, field) or ""
    form.steps.data = json.dumps(queue.steps, indent=1) if queue.steps is not None else ""
    queue_texts.fill_form(form, queue, form.text_languages)
    return _page(queue, form)


@bp.post("/<name>")
@require("queues.edit")
def save(name: str):
    queue = _queue(name)
    form = _form(queue)
    if not form.validate_on_submit():
        return _page(queue, form), 400
    _apply(queue, form)
    flash(f"Queue {name} saved; " + notify_serve(), "ok")
    return redirect(url_for("queues.edit", name=name))


def _page(queue: Queue, form: QueueForm) -> str:
    text_fields = [queue_texts.form_field(f, lang) for lang in form.text_languages for f in queue_texts.TEXT_FIELDS]
    return render_template("queues/edit.html", queue=queue, form=form, text_fields=text_fields)


def _form(queue: Queue) -> QueueForm:
    languages = queue_texts.offered_languages(queue)
    form_class = type("QueueTextsForm", (QueueForm,), queue_texts.form_fields(languages))
    form = form_class(obj=queue)
    form.text_languages = languages
    others = [q for q in db.get().scalars(select(Queue.name).order_by(Queue.name)) if q != queue.name]
    form.overflow_queue.choices = form.closed_queue.choices = _choices(others)
    form.calendar.choices = _choices(db.get().scalars(select(CalendarRow.name).order_by(CalendarRow.name)))
    flows = _services().flows
    form.survey_flow.choices = _choices(flows.names() if flows else [])
    _callback_defaults(form, queue.name)
    if "callback_offer_key" not in request.form:           # the page, or a post without it: unchanged
        form.callback_offer_key.data = queue.callback_offer_key or ""
    if "callback_customer_first" not in request.form:
        form.callback_customer_first.data = _tristate(queue.callback_customer_first)
    for field in OPTIONAL_NAMES:             # NULL in the table = "(none)" in the form
        if getattr(form, field).data is None:
            getattr(form, field).data = ""
    return form


def _callback_defaults(form: QueueForm, name: str) -> None:
    """Say what an empty callback field means: the configuration's value for this queue."""
    from flask import current_app
    cb = current_app.extensions["callpilot_config"].callbacks
    after = cb.offer_after.get(name, cb.offer_after_seconds)
    first = name in cb.customer_first_queues
    form.callback_offer_after.description = (f"empty: the configuration's {after} s; 0: never offered by the "
                                             f"wait (the key still works)")
    form.callback_offer_key.choices = [("", f"(configuration: {cb.offer_key})")] + [(k, k) for k in KEYS]
    form.callback_customer_first.choices = [("", f"(configuration: {dict(CUSTOMER_FIRST)['yes' if first else 'no']})"),
                                            *CUSTOMER_FIRST]


def _tristate(value: bool | None) -> str:
    return "" if value is None else ("yes" if value else "no")


def notify_serve() -> str:
    """Ask serve to reload the queues; what the user should know about it."""
    notify = _services().notify_serve
    if notify is not None and notify("queues"):
        return "serve uses it now."
    return "serve is not running: it uses it when it starts."


def _choices(names) -> list[tuple[str, str]]:
    return [("", "(none)")] + [(n, n) for n in names]


def _services():
    from admin_web.app import services
    return services()


def _apply(queue: Queue, form: QueueForm) -> None:
    before = audit.snapshot(queue)
    for field in FIELDS:
        setattr(queue, field, getattr(form, field).data if field != "skill" else (form.skill.data or ""))
    for field in OPTIONAL_NAMES:
        setattr(queue, field, getattr(form, field).data or None)
    queue.steps = json.loads(form.steps.data) if (form.steps.data or "").strip() else None
    queue.callback_offer_after = form.callback_offer_after.data
    queue.callback_offer_key = form.callback_offer_key.data or None
    queue.callback_customer_first = {"yes": True, "no": False}.get(form.callback_customer_first.data)
    for column, translations in queue_texts.from_form(form, queue, form.text_languages, request.form).items():
        setattr(queue, column, translations)
    session = db.get()
    audit.record(session, "queue", queue.name, "update", before, audit.snapshot(queue))
    session.commit()


@bp.post("/new")
@require("queues.edit")
def new():
    name = request.form.get("name", "").strip()
    if not re.fullmatch(NAME, name) or db.get().get(Queue, name) is not None:
        flash("A new queue needs an unused name (letters, digits, _ or -).", "error")
        return redirect(url_for("queues.index"))
    session = db.get()
    queue = Queue(name=name, title=name)
    session.add(queue)
    session.flush()
    audit.record(session, "queue", name, "create", None, audit.snapshot(queue))
    session.commit()
    notify_serve()
    return redirect(url_for("queues.edit", name=name))
