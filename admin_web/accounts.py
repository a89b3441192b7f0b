"""Web accounts: the first admin, users, login checks.  Plain functions on a session."""
from __future__ import annotations

import logging
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from admin_web.security import ROLES, generate_password, hash_password, verify_password
from callpilot.infra.db.web_users import WebUser

logger = logging.getLogger(__name__)

FIRST_ADMIN = "admin"


def now() -> datetime:
    return datetime.now(timezone.utc)


def bootstrap_admin(session: Session, username: str = FIRST_ADMIN) -> str | None:
    """Create the first admin with a generated password and return it (shown once), or None
    when any account exists already.  There is no default password."""
    if session.scalar(select(func.count()).select_from(WebUser)):
        return None
    password = generate_password()
    create_user(session, username, password, "admin")
    logger.info("first admin %r created", username)
    return password


def create_user(session: Session, username: str, password: str, role: str,
                agent_extension: str | None = None) -> WebUser:
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    if not username.strip():
        raise ValueError("a username is needed")
    if session.scalar(select(WebUser).where(WebUser.username == username)) is not None:
        raise ValueError(f"user {username!r} exists already")
    user = WebUser(username=username, password_hash=hash_password(password), role=role,
                   agent_extension=agent_extension, active=True, created_at=now())
    session.add(user)
    session.commit()
    return user


def set_password(session: Session, username: str, password: str) -> None:
    user = session.scalar(select(WebUser).where(WebUser.username == username))
    if user is None:
        raise ValueError(f"no user {username!r}")
    user.password_hash = hash_password(password)
    session.commit()


def authenticate(session: Session, username: str, password: str) -> WebUser | None:
    user = session.scalar(select(WebUser).where(WebUser.username == username))
    if user is None or not user.active or not verify_password(user.password_hash, password):
        logger.info("failed login for %r", username)
        return None
    user.last_login_at = now()
    session.commit()
    return user
