"""Passwords, roles and permissions, login state, and the HTTP security headers.

* Passwords: argon2id (argon2-cffi defaults, RFC 9106 low-memory profile).
* Roles: admin, supervisor, agent; each view names the permission it needs and
  :func:`require` enforces it (403 for a logged-in user without it, login page otherwise).
* Sessions: Flask's signed cookie, HttpOnly + SameSite=Lax (+ Secure behind TLS), expiring
  after ``SESSION_IDLE_MINUTES`` without a request and ``SESSION_MAX_HOURS`` after login.
"""
from __future__ import annotations

import functools
import logging
import secrets
from datetime import datetime, timedelta, timezone
from typing import Callable

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import abort, current_app, g, redirect, request, session, url_for

logger = logging.getLogger(__name__)

ROLES = ("admin", "supervisor", "agent")

PERMISSIONS: dict[str, frozenset[str]] = {
    "admin": frozenset({"flows.view", "flows.edit", "flows.publish", "queues.view", "queues.edit",
                        "agents.view", "agents.edit", "agents.create", "agents.delete", "customers.view",
                        "customers.edit", "audit.view", "users.manage", "wallboard.view",
                        "reports.view", "dnc.view", "dnc.edit", "campaigns.view", "campaigns.edit",
                        "calendars.edit", "callbacks.view", "callbacks.cancel"}),
    "supervisor": frozenset({"flows.view", "queues.view", "queues.edit", "agents.view",
                             "agents.edit", "customers.view", "audit.view", "wallboard.view",
                             "reports.view", "dnc.view", "dnc.edit", "campaigns.view", "campaigns.edit",
                             "calendars.edit", "callbacks.view", "callbacks.cancel"}),
    "agent": frozenset({"agent.page"}),
}

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "media-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'self'; "
       "form-action 'self'; frame-ancestors 'none'")

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def generate_password() -> str:
    """A password to show once: 16 url-safe characters (~96 bits)."""
    return secrets.token_urlsafe(12)


def can(role: str | None, permission: str) -> bool:
    return permission in PERMISSIONS.get(role or "", frozenset())


def require(permission: str) -> Callable:
    """View decorator: the logged-in user's role must grant ``permission``."""
    def decorate(view: Callable) -> Callable:
        @functools.wraps(view)
        def wrapped(*args, **kwargs):
            if g.get("user") is None:
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
            if not can(g.user.role, permission):
                logger.info("user %s (%s) refused %s on %s", g.user.username, g.user.role,
                            permission, request.path)
                abort(403)
            return view(*args, **kwargs)
        return wrapped
    return decorate


def start_session(user_id: int) -> None:
    session.clear()
    session.permanent = True
    session["user_id"] = user_id
    session["login_at"] = datetime.now(timezone.utc).timestamp()


def session_user_id() -> int | None:
    """The logged-in user's id, or None (also when the session is past its maximum age)."""
    user_id = session.get("user_id")
    if user_id is None:
        return None
    started = datetime.fromtimestamp(session.get("login_at", 0), timezone.utc)
    if datetime.now(timezone.utc) - started > timedelta(hours=current_app.config["SESSION_MAX_HOURS"]):
        session.clear()
        return None
    return user_id


def add_security_headers(response):
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CSP)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("Referrer-Policy", "same-origin")
    headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
    if current_app.config["SESSION_COOKIE_SECURE"]:
        headers.setdefault("Strict-Transport-Security", "max-age=31536000")
    return response
