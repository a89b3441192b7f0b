"""JSON API (``/api/v1``) for flows, queues, agents (list, create, edit), callbacks and the live board, documented by an
OpenAPI file generated from this code by flask-smorest (``/api/openapi.json``).

Authentication: ``Authorization: Bearer <token>`` (see ``admin_web.tokens``), or the browser
session; with the session, state-changing calls need the CSRF token (``X-CSRFToken`` header)
like forms do.  Permissions are the user's role's, as in the pages.  Changes are audited.
"""
from __future__ import annotations

import copy
import json
import logging

from flask import current_app, g, request
from flask_smorest import Api, Blueprint, abort
from flask_wtf.csrf import CSRFError
from marshmallow import Schema, ValidationError, fields, validate, validates_schema
from sqlalchemy import select
from werkzeug.exceptions import HTTPException

from admin_web import agents, audit, callbacks, db, flows, queue_texts, queues, tokens
from admin_web.security import can
from callpilot.infra.db.callbacks import Callback, CallbackState
from callpilot.infra.db.agents import SIP_REALM
from callpilot.infra.db.models import Agent, Queue

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

bp = Blueprint("api", __name__, url_prefix="/api/v1",
               description="CallPilot resources; bearer token or session (+ CSRF header) auth")


class JsonErrorsApi(Api):
    """flask-smorest's Api without its app-wide JSON error handlers: pages keep HTML errors;
    the API blueprint answers JSON (``_json_error`` below)."""

    def _register_error_handlers(self):
        pass


api = JsonErrorsApi()

API_CONFIG = {
    "API_TITLE": "CallPilot", "API_VERSION": "v1", "OPENAPI_VERSION": "3.0.3",
    "OPENAPI_URL_PREFIX": "/api", "OPENAPI_JSON_PATH": "openapi.json",
    "API_SPEC_OPTIONS": {"components": {"securitySchemes": {
        "bearer": {"type": "http", "scheme": "bearer"},
        "session": {"type": "apiKey", "in": "cookie", "name": "callpilot_session"}}},
        "security": [{"bearer": []}, {"session": []}]},
}


def init_app(app, csrf) -> None:
    for key, value in API_CONFIG.items():
        app.config.setdefault(key, value)
    api.init_app(app)
    api.register_blueprint(bp)
    csrf.exempt(bp)


# ----------------------------------------------------------------------------- auth


@bp.before_request
def _authenticate() -> None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer "):
        g.user = tokens.user_for(db.get(), header[len("Bearer "):].strip())
        if g.user is None:
            abort(401, message="invalid or revoked token")
        return
    if g.get("user") is None:
        abort(401, message="log in or send Authorization: Bearer <token>")
    if request.method not in SAFE_METHODS:
        current_app.extensions["csrf"].protect()


def _json_error(exc: HTTPException):
    body = {"code": exc.code, "status": exc.name,
            "message": getattr(exc, "data", {}).get("message") or exc.description}
    if isinstance(exc, CSRFError):
        body["message"] = exc.description
    if getattr(exc, "data", {}).get("messages"):          # a request schema's errors, per field
        body["errors"] = exc.data["messages"]
    return body, exc.code


# by code too: the app's own code handlers (HTML 403) would otherwise win over a class handler
for _code in (400, 401, 403, 404, 405, 409, 422, 429, 503):
    bp.register_error_handler(_code, _json_error)
bp.register_error_handler(HTTPException, _json_error)


def _need(permission: str) -> None:
    if not can(g.user.role, permission):
        abort(403, message=f"role {g.user.role} may not {permission}")


# ----------------------------------------------------------------------------- schemas


class ProblemSchema(Schema):
    node_id = fields.String(allow_none=True)
    reason = fields.String()


class FlowSummarySchema(Schema):
    name = fields.String()
    live_version = fields.Integer(allow_none=True)
    problems = fields.Integer(metadata={"description": "problems in the draft"})


class FlowSchema(Schema):
    name = fields.String()
    live_version = fields.Integer(allow_none=True)
    draft = fields.Dict(metadata={"description": "the flow document being edited"})
    problems = fields.List(fields.Nested(ProblemSchema))


class DraftSchema(Schema):
    document = fields.Dict(required=True)


class PublishSchema(Schema):
    comment = fields.String(load_default="")


class RollbackSchema(Schema):
    version = fields.Integer(required=True, validate=validate.Range(min=1))
    comment = fields.String(load_default="")


class VersionSchema(Schema):
    version = fields.Integer()


def _translations(what: str) -> fields.Dict:
    return fields.Dict(keys=fields.String(), values=fields.String(), metadata={"description": (
        f"language (primary subtag, e.g. ko) -> {what} for calls in that language, in its voice; "
        "the others hear the default text.  A PATCH replaces them all")})


class QueueSchema(Schema):
    name = fields.String(dump_only=True)
    title = fields.String()
    skill = fields.String()
    sl_target_seconds = fields.Integer(validate=validate.Range(1, 3600))
    sl_target_percent = fields.Integer(validate=validate.Range(1, 100))
    max_wait_seconds = fields.Integer(validate=validate.Range(0, 86400))
    overflow_queue = fields.String(allow_none=True)
    join_empty = fields.Boolean()
    announce_frequency = fields.Integer(validate=validate.Range(0, 3600))
    announce_position = fields.Boolean()
    periodic_announce = fields.String(validate=validate.Length(max=queue_texts.MAX_TEXT),
                                      metadata={"description": "the default text (languages without their own)"})
    periodic_announce_translations = _translations("the text said with each announcement")
    steps = fields.Raw(allow_none=True, metadata={"description": "routing steps, null = default"})
    calendar = fields.String(allow_none=True, metadata={"description": "opening hours; null = always open"})
    closed_queue = fields.String(allow_none=True)
    closed_message = fields.String(validate=validate.Length(max=queue_texts.MAX_TEXT),
                                   metadata={"description": "default text; empty: the built-in closed message"})
    closed_message_translations = _translations("the closed message")
    survey_flow = fields.String(allow_none=True)
    callback_offer_after = fields.Integer(allow_none=True, validate=validate.Range(0, 86400),
                                          metadata={"description": "seconds of estimated wait; null = configuration"})
    callback_offer_key = fields.String(allow_none=True, validate=validate.OneOf(list(queues.KEYS)))
    callback_customer_first = fields.Boolean(allow_none=True)


class QueuePatchSchema(QueueSchema):
    """Any subset of a queue's settings."""


class AgentSchema(Schema):
    extension = fields.String()
    name = fields.String()
    birth_year = fields.Integer(allow_none=True)
    languages = fields.List(fields.String())
    skills = fields.Dict(keys=fields.String(), values=fields.Integer())
    queues = fields.List(fields.String())
    auto_login = fields.Boolean()
    wrapup_seconds = fields.Integer(allow_none=True)


class ServeNoteSchema(Schema):
    serve_reloaded = fields.Boolean(metadata={"description": "serve confirmed it reloaded the roster and "
                                                              "SIP accounts; false: it uses them at its start"})


class AgentSavedSchema(AgentSchema, ServeNoteSchema):
    pass


class AgentCreatedSchema(AgentSavedSchema):
    sip_password = fields.String(metadata={"description": "shown in this answer only; only its digest is stored"})
    sip_realm = fields.String()


class AgentWriteSchema(Schema):
    """The agent form's fields and checks (``admin_web.agents``), as JSON."""
    name = fields.String()
    birth_year = fields.Integer(allow_none=True, validate=validate.Range(*agents.BIRTH_YEARS))
    languages = fields.List(fields.String())
    skills = fields.Dict(keys=fields.String(), values=fields.Integer(),
                         metadata={"description": "skill -> level 1-5"})
    queues = fields.List(fields.String())
    auto_login = fields.Boolean()
    wrapup_seconds = fields.Integer(allow_none=True, validate=validate.Range(*agents.WRAPUP_SECONDS),
                                    metadata={"description": "null = the ACD default"})

    @validates_schema
    def _form_checks(self, data, **kwargs) -> None:
        if agents.language_errors(data.get("languages", [])):
            raise ValidationError(f"not language codes: {', '.join(agents.language_errors(data['languages']))}",
                                  "languages")
        if agents.skill_errors(data.get("skills", {})):
            raise ValidationError(f"a skill is [A-Za-z0-9_-] with a level 1-5, not "
                                  f"{', '.join(agents.skill_errors(data['skills']))}", "skills")


class AgentCreateSchema(AgentWriteSchema):
    extension = fields.String(required=True, metadata={"description": "2-8 digits, unused"})


# ----------------------------------------------------------------------------- flows


def _problem_list(document) -> list[dict]:
    return [{"node_id": p.node_id, "reason": p.reason} for p in flows.problems_of(document)]


@bp.get("/flows")
@bp.response(200, FlowSummarySchema(many=True))
def list_flows():
    _need("flows.view")
    store = flows.flow_store()
    latest = store.latest_versions()
    return [{"name": n, "live_version": latest.get(n), "problems": len(_problem_list(flows.working_copy(n)))}
            for n in store.names()]


@bp.get("/flows/<name>")
@bp.response(200, FlowSchema)
def get_flow(name: str):
    _need("flows.view")
    document = flows.working_copy(name)
    return {"name": name, "live_version": flows.flow_store().latest_versions().get(name),
            "draft": document, "problems": _problem_list(document)}


@bp.put("/flows/<name>/draft")
@bp.arguments(DraftSchema)
@bp.response(200, ProblemSchema(many=True))
def put_draft(body, name: str):
    """Replace the draft (kept even if invalid); answers its problems.  Nothing goes live."""
    _need("flows.edit")
    try:
        before = flows.flow_store().draft(name)
    except KeyError:
        before = None
    problems = flows.save(name, before, copy.deepcopy(body["document"]), "save_draft")
    return [{"node_id": p.node_id, "reason": p.reason} for p in problems]


@bp.post("/flows/<name>/publish")
@bp.arguments(PublishSchema)
@bp.response(201, VersionSchema)
def publish_flow(body, name: str):
    _need("flows.publish")
    try:
        return {"version": flows.publish_draft(name, body["comment"])}
    except KeyError:
        abort(404, message=f"no draft of flow {name}")
    except ValueError as exc:
        abort(409, message="; ".join(str(e) for e in getattr(exc, "errors", [])) or str(exc))


@bp.post("/flows/<name>/rollback")
@bp.arguments(RollbackSchema)
@bp.response(201, VersionSchema)
def rollback_flow(body, name: str):
    _need("flows.publish")
    try:
        return {"version": flows.rollback_to(name, body["version"], body["comment"])}
    except KeyError:
        abort(404, message=f"flow {name} has no version {body['version']}")


# ----------------------------------------------------------------------------- queues, agents


def _queue_or_404(name: str) -> Queue:
    queue = db.get().get(Queue, name)
    if queue is None:
        abort(404, message=f"no queue {name}")
    return queue


@bp.get("/queues")
@bp.response(200, QueueSchema(many=True))
def list_queues():
    _need("queues.view")
    return db.get().scalars(select(Queue).order_by(Queue.name)).all()


@bp.get("/queues/<name>")
@bp.response(200, QueueSchema)
def get_queue(name: str):
    _need("queues.view")
    return _queue_or_404(name)


@bp.patch("/queues/<name>")
@bp.arguments(QueuePatchSchema(partial=True))
@bp.response(200, QueueSchema)
def patch_queue(body, name: str):
    _need("queues.edit")
    queue = _queue_or_404(name)
    if "steps" in body and body["steps"] is not None:
        check = current_app.extensions["callpilot_services"].check_queue_steps
        problem = check(body["steps"]) if check else None
        if problem:
            abort(422, message=problem)
    _check_texts(body, queue)
    before = audit.snapshot(queue)
    for key, value in body.items():
        setattr(queue, key, value)
    session = db.get()
    audit.record(session, "queue", name, "update", before, audit.snapshot(queue), "api")
    session.commit()
    queues.notify_serve()
    return queue


def _check_texts(body: dict, queue: Queue) -> None:
    """The translations given: offered languages, no empty text, not too long (422)."""
    languages = queue_texts.offered_languages(queue)
    for field in queue_texts.TEXT_FIELDS:
        column = queue_texts.translations_column(field)
        if column in body and (errors := queue_texts.translation_errors(body[column], languages)):
            abort(422, message=f"{column}: " + "; ".join(errors))


def _agent_json(agent: Agent) -> dict:
    return {"extension": agent.extension, "name": agent.name, "birth_year": agent.birth_year,
            "languages": agent.languages, "skills": {s.skill: s.level for s in agent.skills},
            "queues": sorted(m.queue_name for m in agent.queues), "auto_login": agent.auto_login,
            "wrapup_seconds": agent.wrapup_seconds}


@bp.get("/agents")
@bp.response(200, AgentSchema(many=True))
def list_agents():
    _need("agents.view")
    return [_agent_json(a) for a in db.get().scalars(select(Agent).order_by(Agent.extension))]


def _check_queues(values: dict) -> None:
    known = set(db.get().scalars(select(Queue.name)))
    unknown = sorted(set(values.get("queues", [])) - known)
    if unknown:
        abort(422, message=f"no such queues: {', '.join(unknown)}")


@bp.post("/agents")
@bp.arguments(AgentCreateSchema)
@bp.response(201, AgentCreatedSchema)
@bp.alt_response(409, description="the extension is taken")
def create_agent(body):
    """A new agent with a generated SIP password, shown in this answer only; serve is told."""
    _need("agents.create")
    extension = body.pop("extension").strip()
    problem = agents.extension_error(extension)
    if problem:
        abort(409 if agents.EXTENSION.fullmatch(extension) else 422, message=problem)
    _check_queues(body)
    agent, password = agents.create(extension, body)
    db.get().commit()
    created = {**_agent_json(agent), "sip_password": password, "sip_realm": SIP_REALM,
               "serve_reloaded": agents.serve_reloaded()}
    return created, 201, {"Cache-Control": "no-store"}


@bp.patch("/agents/<extension>")
@bp.arguments(AgentWriteSchema(partial=True))
@bp.response(200, AgentSavedSchema)
def patch_agent(body, extension: str):
    """Change any subset of an agent's settings (as the agent form); serve is told."""
    _need("agents.edit")
    agent = db.get().get(Agent, extension)
    if agent is None:
        abort(404, message=f"no agent {extension}")
    _check_queues(body)
    before = agents.snapshot(agent)
    agents.apply(agent, body)
    session = db.get()
    session.flush()
    audit.record(session, "agent", extension, "update", before, agents.snapshot(agent), "api")
    session.commit()
    return {**_agent_json(agent), "serve_reloaded": agents.serve_reloaded()}


@bp.delete("/agents/<extension>")
@bp.response(200, ServeNoteSchema)
def delete_agent(extension: str):
    """Delete an agent; serve takes it out of its roster now, or after the call it is on."""
    _need("agents.delete")
    agent = db.get().get(Agent, extension)
    if agent is None:
        abort(404, message=f"no agent {extension}")
    agents.delete(agent)
    db.get().commit()
    return {"serve_reloaded": agents.serve_reloaded()}


@bp.get("/wallboard")
@bp.response(200)
def wallboard():
    """The wallboard's data: queues (waiting, longest wait, SL, ASA, abandon rate), agents."""
    _need("wallboard.view")
    from admin_web.wallboard import producer
    return json.loads(json.dumps(producer(current_app._get_current_object())(), default=str))


# ----------------------------------------------------------------------------- callbacks


class CallbackAttemptSchema(Schema):
    agent = fields.String(allow_none=True)
    outcome = fields.String(allow_none=True, metadata={"description": "null: in progress"})
    started_at = fields.DateTime()
    customer_dialled_at = fields.DateTime(allow_none=True)
    ended_at = fields.DateTime(allow_none=True)


class CallbackSchema(Schema):
    id = fields.String()
    number = fields.String()
    queue = fields.String()
    name = fields.String()
    reason = fields.String()
    context = fields.Dict()
    source = fields.String()
    state = fields.String(metadata={"enum": [s.value for s in CallbackState]})
    attempts = fields.Integer(metadata={"description": "customer attempts so far"})
    created_at = fields.DateTime()
    expires_at = fields.DateTime()
    not_before = fields.DateTime(allow_none=True)
    closed_at = fields.DateTime(allow_none=True)
    detail = fields.String()


class CallbackListedSchema(CallbackSchema):
    history = fields.List(fields.Nested(CallbackAttemptSchema), metadata={"description": "every attempt, oldest first"})


class CallbackFilterSchema(Schema):
    queue = fields.String(load_default="")
    state = fields.String(load_default="", validate=validate.OneOf(["", *(s.value for s in CallbackState)]))
    day = fields.Date(load_default=None, metadata={"description": "requested that day (server's local time)"})


@bp.get("/callbacks")
@bp.arguments(CallbackFilterSchema, location="query")
@bp.response(200, CallbackListedSchema(many=True))
def list_callbacks(filters):
    """Callbacks, newest request first (at most 500), with their attempts; the page's filters."""
    _need("callbacks.view")
    day = filters["day"].isoformat() if filters["day"] else ""
    rows, attempts = callbacks.find({"queue": filters["queue"], "state": filters["state"], "day": day})
    columns = [column.key for column in Callback.__table__.columns]
    return [{**{key: getattr(row, key) for key in columns}, "history": attempts[row.id]} for row in rows]


@bp.post("/callbacks/<callback_id>/cancel")
@bp.response(200, CallbackSchema)
@bp.alt_response(409, description="not pending any more (serve is dialling it, or it is closed)")
def cancel_callback(callback_id: str):
    """Cancel a pending callback: the same conditional close as the page; audited."""
    _need("callbacks.cancel")
    result = callbacks.cancel_pending(callback_id, f"cancelled through the API by {g.user.username}")
    if not result.cancelled:
        abort(409, message=result.message)
    return db.get().get(Callback, callback_id)
