"""API tokens of the web "call me" endpoint: shown once at creation, stored as SHA-256.

A token is 32 random bytes (URL-safe base64), so a plain hash is enough: there is nothing to
guess that a slow hash would protect.  Looking the hash up by its unique index compares no
secret byte by byte in Python.
"""
from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import sessionmaker

from callpilot.infra.db.callbacks import CallbackApiToken

logger = logging.getLogger(__name__)


class TokenExists(ValueError):
    """A token of that name exists already."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class ApiTokens:
    def __init__(self, sessions: sessionmaker):
        self.sessions = sessions

    def create(self, name: str, now: datetime) -> str:
        """A new token named ``name`` (who uses it: "website", "app"); the clear text is
        returned once and never stored."""
        token = secrets.token_urlsafe(32)
        try:
            with self.sessions.begin() as s:
                s.add(CallbackApiToken(name=name, token_sha256=_digest(token), created_at=now))
        except IntegrityError:
            raise TokenExists(f"an API token named {name!r} exists already") from None
        logger.info("API token %r created", name)
        return token

    def holder(self, token: str) -> str | None:
        """The name of a valid (not revoked) token, else None."""
        if not token:
            return None
        with self.sessions() as s:
            return s.scalars(select(CallbackApiToken.name).where(
                CallbackApiToken.token_sha256 == _digest(token), CallbackApiToken.revoked_at.is_(None))).first()

    def revoke(self, name: str, now: datetime) -> bool:
        with self.sessions.begin() as s:
            done = s.execute(update(CallbackApiToken).where(CallbackApiToken.name == name,
                                                            CallbackApiToken.revoked_at.is_(None))
                             .values(revoked_at=now))
        if done.rowcount:
            logger.info("API token %r revoked", name)
        return bool(done.rowcount)
