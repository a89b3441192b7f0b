"""Agents: name, birth year, languages, skills and levels, queues; new agents get a SIP
password generated here and shown once (only its digest hash is stored, docs/decisions.md D3).

Every change is written to the database, then serve is told (``notify_serve("agents")``):
serve re-reads the roster, renders the PJSIP accounts and has Asterisk reload them.  The web
itself never drives Asterisk.  When serve is down, it picks the change up at its start.
"""
from __future__ import annotations

import logging
import re

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_wtf import FlaskForm
from sqlalchemy import select
from wtforms import BooleanField, IntegerField, SelectMultipleField, StringField
from wtforms.validators import NumberRange, Optional, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from admin_web import audit, db
from admin_web.accounts import now
from admin_web.security import generate_password, require
from callpilot.infra.db.agents import SIP_REALM, sip_md5_cred
from callpilot.infra.db.models import Agent, AgentSkill, Queue, QueueMember

logger = logging.getLogger(__name__)

bp = Blueprint("agents", __name__, url_prefix="/agents")

EXTENSION = re.compile(r"[0-9]{2,8}")
SKILL = re.compile(r"([A-Za-z0-9_-]{1,64})\s*[:=]\s*([1-5])")
LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")
SECRET_COLUMNS = ("sip_md5_cred",)


class AgentForm(FlaskForm):
    name = StringField("Name")
    birth_year = IntegerField("Birth year", validators=[Optional(), NumberRange(1900, 2100)])
    languages = StringField("Languages", description="comma separated, e.g. ko, en")
    skills = StringField("Skills and levels", description="skill:level (1-5), e.g. billing:3, cards:1")
    queues = SelectMultipleField("Queues", choices=[], option_widget=CheckboxInput(),
                                 widget=ListWidget(prefix_label=False))
    auto_login = BooleanField("Logged in when serve starts")
    wrapup_seconds = IntegerField("Wrap-up (s), empty = ACD default", validators=[Optional(), NumberRange(0, 3600)])

    def validate_languages(self, field) -> None:
        bad = [x for x in _split(field.data) if not LANGUAGE.fullmatch(x)]
        if bad:
            raise ValidationError(f"not language codes: {', '.join(bad)}")

    def validate_skills(self, field) -> None:
        bad = [x for x in _split(field.data) if not SKILL.fullmatch(x)]
        if bad:
            raise ValidationError(f"write skill:level with a level 1-5, not {', '.join(bad)}")


def _split(text: str | None) -> list[str]:
    return [x.strip().lower() for x in (text or "").split(",") if x.strip()]


def parse_skills(text: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in (SKILL.fullmatch(x) for x in _split(text)) if m}


def _agent(extension: str) -> Agent:
    agent = db.get().get(Agent, extension)
    if agent is None:
        abort(404)
    return agent


def _snapshot(agent: Agent) -> dict:
    values = audit.snapshot(agent, exclude=SECRET_COLUMNS)
    values["skills"] = {s.skill: s.level for s in agent.skills}
    values["queues"] = sorted(m.queue_name for m in agent.queues)
    return values


@bp.get("/")
@require("agents.view")
def index():
    agents = db.get().scalars(select(Agent).order_by(Agent.extension)).all()
    return render_template("agents/index.html", agents=agents, year=now().year)


@bp.get("/<extension>")
@require("agents.view")
def edit(extension: str):
    agent = _agent(extension)
    form = _form(agent)
    form.languages.data = ", ".join(agent.languages or [])
    form.skills.data = ", ".join(f"{s.skill}:{s.level}" for s in agent.skills)
    form.queues.data = [m.queue_name for m in agent.queues]
    return render_template("agents/edit.html", agent=agent, form=form)


@bp.post("/<extension>")
@require("agents.edit")
def save(extension: str):
    agent = _agent(extension)
    form = _form(agent)
    if not form.validate_on_submit():
        return render_template("agents/edit.html", agent=agent, form=form), 400
    before = _snapshot(agent)
    _apply(agent, form)
    session = db.get()
    session.flush()
    audit.record(session, "agent", extension, "update", before, _snapshot(agent))
    session.commit()
    flash(f"Agent {extension} saved; {notify_serve()}", "ok")
    return redirect(url_for("agents.edit", extension=extension))


def _form(agent: Agent) -> AgentForm:
    form = AgentForm(obj=agent)
    form.queues.choices = [(q, q) for q in db.get().scalars(select(Queue.name).order_by(Queue.name))]
    return form


def _apply(agent: Agent, form: AgentForm) -> None:
    agent.name = form.name.data or ""
    agent.birth_year = form.birth_year.data
    agent.languages = _split(form.languages.data)
    agent.auto_login = form.auto_login.data
    agent.wrapup_seconds = form.wrapup_seconds.data
    agent.skills = [AgentSkill(skill=k, level=v) for k, v in parse_skills(form.skills.data).items()]
    agent.queues = [QueueMember(queue_name=q) for q in form.queues.data]


@bp.post("/new")
@require("agents.create")
def new():
    extension = request.form.get("extension", "").strip()
    if not EXTENSION.fullmatch(extension) or db.get().get(Agent, extension) is not None:
        flash("A new agent needs an unused extension of 2-8 digits.", "error")
        return redirect(url_for("agents.index"))
    password = generate_password()
    session = db.get()
    agent = Agent(extension=extension, name=request.form.get("name", "").strip(),
                  sip_md5_cred=sip_md5_cred(extension, password), languages=["en"], auto_login=True)
    session.add(agent)
    session.flush()
    audit.record(session, "agent", extension, "create", None, _snapshot(agent))
    session.commit()
    return _show_password(agent, password, notify_serve())


@bp.post("/<extension>/sip-password")
@require("agents.create")
def new_sip_password(extension: str):
    agent = _agent(extension)
    password = generate_password()
    agent.sip_md5_cred = sip_md5_cred(extension, password)
    session = db.get()
    audit.record(session, "agent", extension, "new_sip_password", detail="SIP password replaced")
    session.commit()
    return _show_password(agent, password, notify_serve())


def notify_serve() -> str:
    """Ask serve to reload the agents (roster and SIP accounts); what the user should know."""
    notify = current_app.extensions["callpilot_services"].notify_serve
    if notify is not None and notify("agents"):
        return "serve and the phones use it now."
    return "serve did not confirm: it uses it when it starts (or run `callpilot asterisk render`)."


def _show_password(agent: Agent, password: str, serve_note: str = ""):
    """Rendered in the POST's own response, never flashed: a flash would sit in the cookie."""
    response = render_template("agents/password.html", agent=agent, password=password,
                               realm=SIP_REALM, serve_note=serve_note)
    return response, 200, {"Cache-Control": "no-store"}
