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
SKILL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
SKILL_TEXT = re.compile(r"(.+?)\s*[:=]\s*([0-9]+)")
LANGUAGE = re.compile(r"[a-z]{2,3}(-[a-z0-9]{2,8})?")
LEVELS = (1, 5)
BIRTH_YEARS = (1900, 2100)
WRAPUP_SECONDS = (0, 3600)
SECRET_COLUMNS = ("sip_md5_cred",)

# The checks the form and the JSON API share (admin_web.api): one definition of a valid agent.


def language_errors(codes: list[str]) -> list[str]:
    """The codes that are not language codes (ko, en, pt-br; any case: stored lower case)."""
    return [code for code in codes if not LANGUAGE.fullmatch(code.lower())]


def skill_errors(skills: dict[str, int]) -> list[str]:
    """``skill:level`` of the pairs with a bad skill name or a level outside 1-5."""
    return [f"{skill}:{level}" for skill, level in skills.items()
            if not SKILL_NAME.fullmatch(skill) or not LEVELS[0] <= level <= LEVELS[1]]


def extension_error(extension: str) -> str | None:
    if not EXTENSION.fullmatch(extension):
        return "A new agent needs an extension of 2-8 digits."
    if db.get().get(Agent, extension) is not None:
        return f"Extension {extension} is taken."
    return None


class AgentForm(FlaskForm):
    name = StringField("Name")
    birth_year = IntegerField("Birth year", validators=[Optional(), NumberRange(*BIRTH_YEARS)])
    languages = StringField("Languages", description="comma separated, e.g. ko, en")
    skills = StringField("Skills and levels", description="skill:level (1-5), e.g. billing:3, cards:1")
    queues = SelectMultipleField("Queues", choices=[], option_widget=CheckboxInput(),
                                 widget=ListWidget(prefix_label=False))
    auto_login = BooleanField("Logged in when serve starts")
    wrapup_seconds = IntegerField("Wrap-up (s), empty = ACD default", validators=[Optional(), NumberRange(*WRAPUP_SECONDS)])

    def validate_languages(self, field) -> None:
        bad = language_errors(_split(field.data))
        if bad:
            raise ValidationError(f"not language codes: {', '.join(bad)}")

    def validate_skills(self, field) -> None:
        items = _split(field.data)
        bad = [x for x in items if not SKILL_TEXT.fullmatch(x)] + skill_errors(parse_skills(field.data))
        if bad:
            raise ValidationError(f"write skill:level with a level 1-5, not {', '.join(bad)}")

    def values(self) -> dict:
        """The form as the values :func:`apply` takes (the API's field names)."""
        return {"name": self.name.data or "", "birth_year": self.birth_year.data,
                "languages": _split(self.languages.data), "auto_login": self.auto_login.data,
                "wrapup_seconds": self.wrapup_seconds.data, "skills": parse_skills(self.skills.data),
                "queues": list(self.queues.data)}


def _split(text: str | None) -> list[str]:
    return [x.strip().lower() for x in (text or "").split(",") if x.strip()]


def parse_skills(text: str | None) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in (SKILL_TEXT.fullmatch(x) for x in _split(text)) if m}


def apply(agent: Agent, values: dict) -> None:
    """Set the given values (any subset of :meth:`AgentForm.values`' keys) on the agent."""
    for key in ("name", "birth_year", "auto_login", "wrapup_seconds"):
        if key in values:
            setattr(agent, key, values[key])
    if "languages" in values:
        agent.languages = [code.lower() for code in values["languages"]]
    if "skills" in values:
        agent.skills = [AgentSkill(skill=k.lower(), level=v) for k, v in values["skills"].items()]
    if "queues" in values:
        agent.queues = [QueueMember(queue_name=q) for q in values["queues"]]


def create(extension: str, values: dict) -> tuple[Agent, str]:
    """Add a new agent (extension checked by :func:`extension_error`, values as for
    :func:`apply`) with a generated SIP password, audited, not committed; the password is
    returned to be shown once."""
    password = generate_password()
    session = db.get()
    agent = Agent(extension=extension, name="", sip_md5_cred=sip_md5_cred(extension, password),
                  languages=["en"], auto_login=True)
    apply(agent, values)
    session.add(agent)
    session.flush()
    audit.record(session, "agent", extension, "create", None, snapshot(agent))
    return agent, password


def _agent(extension: str) -> Agent:
    agent = db.get().get(Agent, extension)
    if agent is None:
        abort(404)
    return agent


def snapshot(agent: Agent) -> dict:
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
    before = snapshot(agent)
    apply(agent, form.values())
    session = db.get()
    session.flush()
    audit.record(session, "agent", extension, "update", before, snapshot(agent))
    session.commit()
    flash(f"Agent {extension} saved; {notify_serve()}", "ok")
    return redirect(url_for("agents.edit", extension=extension))


def _form(agent: Agent) -> AgentForm:
    form = AgentForm(obj=agent)
    form.queues.choices = [(q, q) for q in db.get().scalars(select(Queue.name).order_by(Queue.name))]
    return form


@bp.post("/new")
@require("agents.create")
def new():
    extension = request.form.get("extension", "").strip()
    problem = extension_error(extension)
    if problem:
        flash(problem, "error")
        return redirect(url_for("agents.index"))
    agent, password = create(extension, {"name": request.form.get("name", "").strip()})
    db.get().commit()
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


def delete(agent: Agent) -> None:
    """Delete the agent (skills and queue memberships go with it), audited, not committed.
    serve, once told, takes it out of its roster: now if idle, after its call otherwise."""
    session = db.get()
    audit.record(session, "agent", agent.extension, "delete", snapshot(agent), None)
    session.delete(agent)


@bp.post("/<extension>/delete")
@require("agents.delete")
def remove(extension: str):
    delete(_agent(extension))
    db.get().commit()
    flash(f"Agent {extension} deleted (after the call it may be on); {notify_serve()}", "ok")
    return redirect(url_for("agents.index"))


def serve_reloaded() -> bool:
    """Ask serve to reload the agents (roster and SIP accounts); True if serve confirmed."""
    notify = current_app.extensions["callpilot_services"].notify_serve
    return bool(notify is not None and notify("agents"))


def notify_serve() -> str:
    """:func:`serve_reloaded`, as what the user should know."""
    if serve_reloaded():
        return "serve and the phones use it now."
    return "serve did not confirm: it uses it when it starts (or run `callpilot asterisk render`)."


def _show_password(agent: Agent, password: str, serve_note: str = ""):
    """Rendered in the POST's own response, never flashed: a flash would sit in the cookie."""
    response = render_template("agents/password.html", agent=agent, password=password,
                               realm=SIP_REALM, serve_note=serve_note)
    return response, 200, {"Cache-Control": "no-store"}
