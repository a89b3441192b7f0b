"""Versioned flow store: editable drafts, immutable numbered published versions.

* A draft is the flow being edited; it may be invalid (:meth:`FlowStore.save_draft` returns
  its problems and stores it anyway).
* :meth:`FlowStore.publish` validates the draft and writes it as version N+1; it refuses an
  invalid draft (:class:`~ivr.errors.FlowInvalid`).  Versions are never changed or deleted.
* Rollback re-publishes an earlier version's document as a new version, so history only grows
  and "what was live when" stays answerable.
* A call keeps the version it started with: :meth:`FlowStore.published` returns a parsed
  :class:`~ivr.schema.Flow` (with ``version`` set) that the runner holds for the whole call.

Only portable SQL (no upserts, no RETURNING): the same code runs on SQLite and PostgreSQL.
Two publishers racing for the same number: the primary key refuses the second insert, which
is retried with the next number.
"""
from __future__ import annotations

import copy
import logging
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable

from sqlalchemy import JSON, DateTime, Integer, String, Text, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column, sessionmaker

from callpilot.infra.db.base import Base
from ivr import schema
from ivr.errors import FlowError, FlowInvalid
from ivr.schema import Flow

logger = logging.getLogger(__name__)

PUBLISH_ATTEMPTS = 5


def _now() -> datetime:
    return datetime.now(timezone.utc)


class FlowDraft(Base):
    __tablename__ = "ivr_flow_drafts"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    document: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_by: Mapped[str] = mapped_column(String(64), default="")


class FlowVersion(Base):
    __tablename__ = "ivr_flow_versions"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    document: Mapped[dict] = mapped_column(JSON)
    published_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    published_by: Mapped[str] = mapped_column(String(64), default="")
    comment: Mapped[str] = mapped_column(Text, default="")
    rollback_of: Mapped[int | None] = mapped_column(Integer, nullable=True)


@dataclass(frozen=True)
class VersionInfo:
    name: str
    version: int
    published_at: datetime
    published_by: str
    comment: str
    rollback_of: int | None


class UnknownFlow(KeyError):
    """No such flow, draft or version."""


class FlowUnchanged(Exception):
    """Publishing a document equal to the live version: no new version is made."""

    def __init__(self, name: str, version: int) -> None:
        super().__init__(f"flow {name!r}: unchanged, version {version} stays live")
        self.name, self.version = name, version


class FlowStore:
    def __init__(self, sessions: sessionmaker, *, validate: Callable[[dict], list[FlowError]] | None = None,
                 clock: Callable[[], datetime] = _now) -> None:
        """``validate`` defaults to :func:`ivr.schema.check`; pass one with a vocabulary."""
        self._sessions = sessions
        self._validate = validate or schema.check
        self._clock = clock
        self._parsed: dict[tuple[str, int], Flow] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ drafts

    def save_draft(self, name: str, document: dict[str, Any], author: str = "") -> list[FlowError]:
        """Store the draft (even if invalid) and return its problems.  A bad name or a
        document over the size limits is refused (FlowInvalid) and nothing is stored."""
        edge = schema.check_edge(name, document)
        if edge:
            raise FlowInvalid(edge)
        document = _named(name, document)
        with self._sessions.begin() as session:
            draft = session.get(FlowDraft, name)
            if draft is None:
                session.add(FlowDraft(name=name, document=document, updated_at=self._clock(),
                                      updated_by=author))
            else:
                draft.document, draft.updated_at, draft.updated_by = document, self._clock(), author
        return self._validate(document)

    def validate(self, name: str, document: dict[str, Any]) -> list[FlowError]:
        """The problems ``document`` would have as flow ``name``, storing nothing."""
        return schema.check_edge(name, document) or self._validate(_named(name, document))

    def draft(self, name: str) -> dict[str, Any]:
        with self._sessions() as session:
            draft = session.get(FlowDraft, name)
            if draft is None:
                raise UnknownFlow(f"no draft of flow {name!r}")
            return copy.deepcopy(draft.document)

    def check_draft(self, name: str) -> list[FlowError]:
        return self._validate(self.draft(name))

    # ------------------------------------------------------------------ publishing

    def publish(self, name: str, author: str = "", comment: str = "") -> int:
        """Publish the current draft as the next version; FlowInvalid if it has errors,
        FlowUnchanged if it equals the live version."""
        document = self.draft(name)
        errors = self._validate(document)
        if errors:
            raise FlowInvalid(errors)
        return self._insert_version(name, document, author, comment, None)

    def rollback(self, name: str, version: int, author: str = "", comment: str = "") -> int:
        """Make ``version`` live again by publishing its document as a new version
        (FlowUnchanged if it is the live document already)."""
        document = self.document(name, version)
        return self._insert_version(name, document, author,
                                    comment or f"rollback to version {version}", version)

    def _insert_version(self, name: str, document: dict[str, Any], author: str, comment: str,
                        rollback_of: int | None) -> int:
        for _attempt in range(PUBLISH_ATTEMPTS):
            try:
                with self._sessions.begin() as session:
                    latest = self._latest_number(session, name)
                    if latest is not None and session.get(FlowVersion, (name, latest)).document == document:
                        raise FlowUnchanged(name, latest)
                    number = (latest or 0) + 1
                    session.add(FlowVersion(name=name, version=number, document=document,
                                            published_at=self._clock(), published_by=author,
                                            comment=comment, rollback_of=rollback_of))
                logger.info("flow %s version %d published by %s%s", name, number, author or "?",
                            f" (rollback of {rollback_of})" if rollback_of else "")
                return number
            except IntegrityError:
                logger.info("flow %s: version number taken by a concurrent publish; retrying", name)
        raise RuntimeError(f"could not publish flow {name!r}: too many concurrent publishes")

    # ------------------------------------------------------------------ reading

    def latest_version(self, name: str) -> int | None:
        with self._sessions() as session:
            return self._latest_number(session, name)

    def latest_versions(self) -> dict[str, int]:
        """Newest version number of every published flow (one small GROUP BY query)."""
        with self._sessions() as session:
            rows = session.execute(select(FlowVersion.name, func.max(FlowVersion.version))
                                   .group_by(FlowVersion.name)).all()
        return {name: number for name, number in rows}

    @staticmethod
    def _latest_number(session: Session, name: str) -> int | None:
        return session.scalar(select(func.max(FlowVersion.version)).where(FlowVersion.name == name))

    def document(self, name: str, version: int) -> dict[str, Any]:
        with self._sessions() as session:
            row = session.get(FlowVersion, (name, version))
            if row is None:
                raise UnknownFlow(f"flow {name!r} has no version {version}")
            return copy.deepcopy(row.document)

    def published(self, name: str) -> Flow:
        """The live (latest) version, parsed; hold it for the whole call."""
        version = self.latest_version(name)
        if version is None:
            raise UnknownFlow(f"flow {name!r} has no published version")
        return self.version(name, version)

    def version(self, name: str, version: int) -> Flow:
        """A published version, parsed once and cached (versions never change)."""
        key = (name, version)
        with self._lock:
            cached = self._parsed.get(key)
        if cached is not None:
            return cached
        flow = schema.parse(self.document(name, version))
        flow.version = version
        with self._lock:
            self._parsed[key] = flow
        return flow

    def versions(self, name: str) -> list[VersionInfo]:
        with self._sessions() as session:
            rows = session.scalars(select(FlowVersion).where(FlowVersion.name == name)
                                   .order_by(FlowVersion.version)).all()
            return [VersionInfo(r.name, r.version, r.published_at, r.published_by, r.comment,
                                r.rollback_of) for r in rows]

    def names(self) -> list[str]:
        """Every flow with a draft or a published version."""
        with self._sessions() as session:
            drafts = set(session.scalars(select(FlowDraft.name)).all())
            published = set(session.scalars(select(FlowVersion.name).distinct()).all())
        return sorted(drafts | published)

    def seed(self, name: str, document: dict[str, Any], author: str = "builtin") -> int | None:
        """Publish ``document`` as version 1 if ``name`` has nothing yet (start-up seeding).

        Serves of several nodes on one database seed at once: one publishes, the others find
        that version (its publish is unchanged) or lose the race for the draft row (its
        insert fails; looked at again) and publish nothing."""
        for _attempt in range(PUBLISH_ATTEMPTS):
            if self.latest_version(name) is not None:
                return None
            try:
                self.save_draft(name, document, author)
                return self.publish(name, author, "built-in flow")
            except FlowUnchanged:
                return None
            except IntegrityError:
                logger.info("flow %s: draft written by a concurrent seed; looking again", name)
        raise RuntimeError(f"could not seed flow {name!r}: too many concurrent seeds")


def _named(name: str, document: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(document, dict):
        raise TypeError("a flow document must be a JSON object")
    document = copy.deepcopy(document)
    document["name"] = name
    return document
