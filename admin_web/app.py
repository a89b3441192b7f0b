"""Admin web UI (Flask): ``create_app(config, services)`` builds the app, one blueprint per area.

Served by waitress through ``callpilot web`` (``callpilot.app.web``), which also builds the
:class:`~admin_web.services.WebServices`.  The web writes the database; serve picks changes
up by itself (flows are polled every 2 s).  It never drives Asterisk.
"""
from __future__ import annotations

import logging
import secrets
from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask, g, jsonify, redirect, render_template, url_for
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf.csrf import CSRFProtect

from admin_web import (agent_page, agents, api, audit, auth, calendars, callme, campaigns, customers, db, dnc,
                       flows, metrics, queues, reports, streams, tokens, users, wallboard)
from admin_web import callbacks
from admin_web.security import add_security_headers, can, session_user_id
from admin_web.services import WebServices
from callpilot.infra.config import Config
from callpilot.infra.db.web_users import WebUser

logger = logging.getLogger(__name__)

BLUEPRINTS = (auth.bp, flows.bp, queues.bp, calendars.bp, agents.bp, customers.bp, campaigns.bp, dnc.bp,
              wallboard.bp, agent_page.bp, reports.bp, tokens.bp, users.bp, audit.bp, metrics.bp,
              callbacks.bp)
SECRET_KEY_FILE = "web-secret-key"

csrf = CSRFProtect()


def create_app(config: Config | None = None, services: WebServices | None = None,
               test_config: dict[str, Any] | None = None) -> Flask:
    app = Flask(__name__)
    config = config or Config()
    app.config.from_mapping(_defaults(config))
    if test_config:
        app.config.from_mapping(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _secret_key(config.state_dir)
    app.extensions["callpilot_services"] = services or WebServices()
    app.extensions["callpilot_config"] = config
    db.init_app(app, app.config["DATABASE_URL"])
    csrf.init_app(app)
    _limit_logins(app)
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    app.config["CALLPILOT"] = config
    callme_bp = callme.make_blueprint(config)               # "call me" from the bank's site/app:
    csrf.exempt(callme_bp)                                   # API token per request, no cookie
    app.register_blueprint(callme_bp)
    api.init_app(app, csrf)
    metrics.init_app(app)
    streams.init_app(app, app.config["LIVE_STREAMS_MAX"])
    _hooks(app)
    return app


def _defaults(config: Config) -> dict[str, Any]:
    return {
        "DATABASE_URL": config.db_url,
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": config.web_behind_tls,
        "SESSION_COOKIE_NAME": "callpilot_session",
        "PERMANENT_SESSION_LIFETIME": timedelta(minutes=30),   # idle timeout
        "SESSION_MAX_HOURS": 12,                                # since login, whatever the activity
        "LOGIN_RATE_LIMIT": "5 per minute;30 per hour",
        "WTF_CSRF_TIME_LIMIT": None,          # the token lives as long as the session
        "MAX_CONTENT_LENGTH": 16 * 1024 * 1024,
        "LIVE_STREAMS_MAX": config.web_live_streams,   # open live pages (admin_web.streams)
    }


def _secret_key(state_dir: Path) -> str:
    """Signing key for session cookies: generated once per install (mode 0600)."""
    path = state_dir / SECRET_KEY_FILE
    if path.exists():
        return path.read_text().strip()
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_hex(32)
    path.touch(mode=0o600)
    path.write_text(key)
    return key


def _limit_logins(app: Flask) -> None:
    """Login POSTs per client address, in memory (one web process; see docs/decisions.md)."""
    limiter = Limiter(get_remote_address, app=app, storage_uri="memory://", default_limits=[])
    view = app.view_functions.get("auth.login") or auth.login
    limited = limiter.limit(lambda: app.config["LOGIN_RATE_LIMIT"], methods=["POST"])(view)
    app.extensions["callpilot_login_view"] = limited
    app.extensions["callpilot_limiter"] = limiter


def _hooks(app: Flask) -> None:
    app.view_functions["auth.login"] = app.extensions["callpilot_login_view"]
    app.before_request(_load_user)
    app.after_request(add_security_headers)
    app.context_processor(lambda: {"can": lambda p: g.get("user") is not None and can(g.user.role, p)})

    @app.get("/health")
    def health():
        return jsonify(status="ok")

    @app.get("/")
    def home():
        if g.get("user") is None:
            return redirect(url_for("auth.login"))
        return redirect(auth.home_for(g.user))

    @app.errorhandler(403)
    def forbidden(_exc):
        return render_template("403.html"), 403


def _load_user() -> None:
    user_id = session_user_id()
    g.user = None
    if user_id is not None:
        user = db.get().get(WebUser, user_id)
        g.user = user if user is not None and user.active else None


def services() -> WebServices:
    from flask import current_app
    return current_app.extensions["callpilot_services"]
