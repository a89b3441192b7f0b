"""``POST /api/v1/callbacks``: the bank's website or app asks "call me" for a queue.

Request (JSON), with ``Authorization: Bearer <token>`` (``callpilot callbacks token NAME``)::

    {"queue": "cards", "number": "010-1234-5678", "name": "Kim Minji",
     "reason": "card declined abroad", "source": "app",
     "context": {"page": "/cards/declined", "reference": "TX-88121"},
     "window": {"start": "2026-12-01T14:00:00+09:00", "end": "2026-12-01T15:00:00+09:00"}}

``window`` is optional (absent: now).  The callback enters the same line as callers who
held (entry time = now, the window's start for a later slot), under the same guards: one
open callback per number and queue (a repeat answers 200 with the existing one), numbers
normalised to E.164 and refused unless fixed-line or mobile in an allowed country.

Answers: 201 created, 200 already open, 400 ``{"error": code, "message": ...}``, 401 bad
token, 429 too many requests (per token, ``callbacks.api_rate_limit``).  The limiter keeps
its counts in memory: one web process counts alone.

This module writes the row through ``callpilot.infra.db``; it never imports ``acd`` (the
serve process picks the callback up from the database).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import Blueprint, current_app, jsonify, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from sqlalchemy import select

from callpilot.infra.config import CallbacksConfig, Config
from callpilot.infra.db.api_tokens import ApiTokens
from callpilot.infra.db.callback_store import CallbackStore, NewCallback
from callpilot.infra.db.callbacks import CallbackSource
from callpilot.infra.db.models import Queue
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from callpilot.infra.phone_numbers import InvalidNumber, to_e164

logger = logging.getLogger(__name__)

MAX_TEXT = 500
MAX_CONTEXT_KEYS = 20
SOURCES = {CallbackSource.WEB.value, CallbackSource.APP.value}


class RequestRefused(ValueError):
    def __init__(self, code: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.code, self.status = code, status


@dataclass
class CallMe:
    """What the endpoint needs, built once per app."""
    store: CallbackStore
    tokens: ApiTokens
    settings: CallbacksConfig
    sessions: Any

    def queue_exists(self, name: str) -> bool:
        with self.sessions() as s:
            return s.scalars(select(Queue.name).where(Queue.name == name)).first() is not None


def make_blueprint(config: Config | None) -> Blueprint:
    """The blueprint, its rate limiter and its database access for one app."""
    config = config or Config()
    bp = Blueprint("callme", __name__, url_prefix="/api/v1")
    limiter = Limiter(_token_or_address, storage_uri="memory://", default_limits=[],
                      key_prefix="callme", headers_enabled=True)

    @bp.record_once
    def _setup(state) -> None:
        engine = make_engine(config.db_url)
        create_schema(engine)
        sessions = make_sessionmaker(engine)
        state.app.extensions["callme"] = CallMe(CallbackStore(sessions, "web"), ApiTokens(sessions),
                                                config.callbacks, sessions)
        limiter.init_app(state.app)

    @bp.errorhandler(429)
    def _too_many(exc):
        return jsonify(error="rate-limited", message=f"too many requests: {exc.description}"), 429

    bp.add_url_rule("/callbacks", "create",
                    limiter.limit(config.callbacks.api_rate_limit)(create_callback), methods=["POST"])
    return bp


def _token_or_address() -> str:
    return _bearer() or get_remote_address()


def _bearer() -> str:
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header.lower().startswith("bearer ") else ""


def create_callback():
    callme: CallMe = current_app.extensions["callme"]
    holder = callme.tokens.holder(_bearer())
    if holder is None:
        return jsonify(error="token-invalid", message="missing or invalid API token"), 401
    now = datetime.now(timezone.utc)
    try:
        new = parse_request(request.get_json(silent=True), callme, now)
    except RequestRefused as exc:
        logger.info("call-me request from %s refused: %s", holder, exc)
        return jsonify(error=exc.code, message=str(exc)), exc.status
    callback, created = callme.store.create(new, now)
    logger.info("call-me from %s: callback %s for %s in %s (%s)", holder, callback.id, callback.number,
                callback.queue, "created" if created else "already open")
    body = {"id": callback.id, "state": callback.state, "queue": callback.queue, "number": callback.number,
            "created": created, "expires_at": callback.expires_at.isoformat()}
    return jsonify(body), 201 if created else 200


def parse_request(body: Any, callme: CallMe, now: datetime) -> NewCallback:
    if not isinstance(body, dict):
        raise RequestRefused("body-invalid", "expected a JSON object")
    queue = _text(body, "queue", required=True)
    if not callme.queue_exists(queue):
        raise RequestRefused("queue-unknown", f"no queue {queue!r}", 404)
    settings = callme.settings
    try:
        number = to_e164(_text(body, "number", required=True), settings.default_country,
                         settings.allowed_countries)
    except InvalidNumber as exc:
        raise RequestRefused(exc.code, str(exc)) from None
    source = body.get("source", CallbackSource.WEB.value)
    if source not in SOURCES:
        raise RequestRefused("source-invalid", f"source must be one of {sorted(SOURCES)}")
    start, end = _window(body.get("window"), now, settings)
    return NewCallback(number=number, queue=queue, entered_at=start or now, source=CallbackSource(source),
                       expires_at=end or now + timedelta(seconds=settings.expiry_seconds),
                       name=_text(body, "name"), reason=_text(body, "reason"),
                       context=_context(body.get("context")), not_before=start, window_end=end,
                       ticket={"priority": 0, "skills": {}, "steps": None, "attributes": {}})


def _text(body: dict, key: str, required: bool = False) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise RequestRefused(f"{key}-invalid", f"{key} must be a string of at most {MAX_TEXT} characters")
    if required and not value.strip():
        raise RequestRefused(f"{key}-missing", f"{key} is required")
    return value.strip()


def _context(value: Any) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_CONTEXT_KEYS:
        raise RequestRefused("context-invalid", f"context must be an object of at most {MAX_CONTEXT_KEYS} keys")
    for key, item in value.items():
        if not isinstance(item, (str, int, float, bool)) or len(str(item)) > MAX_TEXT:
            raise RequestRefused("context-invalid", f"context[{key!r}] must be a short string or number")
    return dict(value)


def _window(value: Any, now: datetime, settings: CallbacksConfig) -> tuple[datetime | None, datetime | None]:
    if value is None:
        return None, None
    if not isinstance(value, dict) or set(value) != {"start", "end"}:
        raise RequestRefused("window-invalid", 'window must be {"start": ISO time, "end": ISO time}')
    start, end = _instant(value["start"]), _instant(value["end"])
    if not now < end or not start < end:
        raise RequestRefused("window-invalid", "window must end in the future, after it starts")
    if start > now + timedelta(seconds=settings.expiry_seconds):
        raise RequestRefused("window-too-far", f"window must start within {settings.expiry_seconds // 3600} hours")
    return max(start, now), end


def _instant(value: Any) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise RequestRefused("window-invalid", f"{value!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise RequestRefused("window-invalid", f"{value!r} needs a time zone offset")
    return moment
