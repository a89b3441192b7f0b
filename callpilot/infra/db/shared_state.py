"""What the nodes on one database share: agent holds (which node is using an agent now),
agent presence (logged in, paused, logged out) and the admin web's change counters.

**Agent holds.**

Each node (Asterisk + ``serve``) keeps its agents' states in memory; on several nodes that
share a database, two of them could offer one agent two calls at once.  Before a node rings
an agent it *takes* the agent's hold; while the hold is live no other node can take it.

Mechanism only (what a hold means for routing is ``acd.agent_holds``'s).  What this module
guarantees, on SQLite and PostgreSQL alike, between any number of processes:

* one row per agent, ``call_id`` NULL when free; a take is ONE conditional ``UPDATE``
  (free, or already this node's, or not renewed since ``stale_before``): of two nodes
  taking at once exactly one gets ``rowcount == 1``.  The very first take of an agent
  inserts its row; of two first inserts one fails on the primary key and reads the holder;
* a release names the call it ends (``WHERE call_id = :call``), so a late release never
  frees a hold taken since for another call;
* a node renews its holds (``renewed_at``); a node that died stops renewing, and its holds
  may be taken once ``renewed_at`` is older than the caller's ``stale_before``.

Times are the nodes' own clocks (UTC); staleness is tens of seconds, far above clock skew
between hosts kept by NTP.  The store is synchronous; ``serve`` runs it off the event loop.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import JSON, Integer, String, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, mapped_column, sessionmaker

from callpilot.infra.db.base import Base
from callpilot.infra.db.types import UtcDateTime

logger = logging.getLogger(__name__)


class AgentHold(Base):
    __tablename__ = "agent_holds"

    agent: Mapped[str] = mapped_column(String(32), primary_key=True)     # the extension
    call_id: Mapped[str | None] = mapped_column(String(128), nullable=True)   # NULL: free
    node: Mapped[str] = mapped_column(String(64))
    taken_at: Mapped[datetime] = mapped_column(UtcDateTime)
    renewed_at: Mapped[datetime] = mapped_column(UtcDateTime)


HOLDS = AgentHold.__table__


@dataclass(frozen=True)
class Hold:
    agent: str
    call_id: str
    node: str


class AgentHoldStore:
    def __init__(self, sessions: sessionmaker, node: str) -> None:
        self.sessions = sessions
        self.node = node

    def take(self, agent: str, call_id: str, now: datetime, stale_before: datetime) -> Hold | None:
        """Hold ``agent`` for ``call_id``: None when taken, else the live hold of another node
        that kept it."""
        with self.sessions.begin() as s:     # Core statements: no ORM work on the ring's path
            won = s.connection().execute(
                update(HOLDS).where(HOLDS.c.agent == agent,
                                    or_(HOLDS.c.call_id.is_(None), HOLDS.c.node == self.node,
                                        HOLDS.c.renewed_at < stale_before))
                .values(call_id=call_id, node=self.node, taken_at=now, renewed_at=now))
            if won.rowcount == 1:
                return None
            holder = s.connection().execute(select(HOLDS.c.call_id, HOLDS.c.node)
                                            .where(HOLDS.c.agent == agent)).first()
            if holder is not None:
                return Hold(agent, holder.call_id or "", holder.node)
        return self._first_take(agent, call_id, now)

    def _first_take(self, agent: str, call_id: str, now: datetime) -> Hold | None:
        try:
            with self.sessions.begin() as s:
                s.add(AgentHold(agent=agent, call_id=call_id, node=self.node, taken_at=now, renewed_at=now))
            return None
        except IntegrityError:                 # another node inserted it first: its hold
            with self.sessions() as s:
                holder = s.get(AgentHold, agent)
                return Hold(agent, holder.call_id or "", holder.node) if holder else Hold(agent, "", "?")

    def release(self, agent: str, call_id: str) -> bool:
        """Free the agent if this node still holds it for ``call_id``."""
        with self.sessions.begin() as s:
            done = s.connection().execute(update(HOLDS).where(HOLDS.c.agent == agent, HOLDS.c.node == self.node,
                                                              HOLDS.c.call_id == call_id)
                                          .values(call_id=None))
            return done.rowcount == 1

    def renew(self, now: datetime) -> int:
        """Renew every hold of this node; the number renewed."""
        with self.sessions.begin() as s:
            return s.execute(update(AgentHold)
                             .where(AgentHold.node == self.node, AgentHold.call_id.is_not(None))
                             .values(renewed_at=now)).rowcount

    def live(self, stale_before: datetime) -> list[Hold]:
        """Every hold in force, this node's included."""
        query = select(AgentHold.agent, AgentHold.call_id, AgentHold.node).where(
            AgentHold.call_id.is_not(None),
            or_(AgentHold.node == self.node, AgentHold.renewed_at >= stale_before))
        with self.sessions() as s:
            return [Hold(agent, call_id, node) for agent, call_id, node in s.execute(query)]


# -- presence: logged in, paused or logged out, the same on every node -----------------------

class AgentPresence(Base):
    """What an agent asked to be (logged in, paused, logged out), whichever node it asked;
    ``version`` counts the changes, so a node applies each one once."""
    __tablename__ = "agent_presence"

    agent: Mapped[str] = mapped_column(String(32), primary_key=True)
    presence: Mapped[str] = mapped_column(String(16))      # logged_out | available | paused
    reason: Mapped[str] = mapped_column(String(200), default="")
    node: Mapped[str] = mapped_column(String(64))          # where it was asked
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


PRESENCE = AgentPresence.__table__


@dataclass(frozen=True)
class Presence:
    agent: str
    presence: str
    reason: str
    node: str
    version: int


class AgentPresenceStore:
    def __init__(self, sessions: sessionmaker, node: str) -> None:
        self.sessions = sessions
        self.node = node

    def publish(self, agent: str, presence: str, reason: str, now: datetime) -> int:
        """Record the agent's new presence, asked on this node; its version."""
        return _count_up(self.sessions, PRESENCE, PRESENCE.c.agent, agent,
                         presence=presence, reason=reason, node=self.node, changed_at=now)

    def since(self, after: datetime) -> list[Presence]:
        """Every presence changed at or after ``after``."""
        query = select(PRESENCE.c.agent, PRESENCE.c.presence, PRESENCE.c.reason, PRESENCE.c.node,
                       PRESENCE.c.version).where(PRESENCE.c.changed_at >= after)
        with self.sessions() as s:
            return [Presence(*row) for row in s.execute(query)]


# -- what the admin web changed: every node reloads it ----------------------------------------

class ConfigChange(Base):
    """A counter per kind of shared setting the web edits (``agents``, ``queues``): bumped by
    every change, so each node reloads what another node's web changed."""
    __tablename__ = "config_changes"

    what: Mapped[str] = mapped_column(String(32), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UtcDateTime)


CHANGES = ConfigChange.__table__


class ChangeLog:
    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def bump(self, what: str, now: datetime) -> int:
        """Count one more change of ``what``; its new version."""
        return _count_up(self.sessions, CHANGES, CHANGES.c.what, what, changed_at=now)

    def versions(self) -> dict[str, int]:
        with self.sessions() as s:
            return dict(s.connection().execute(select(CHANGES.c.what, CHANGES.c.version)).all())


def _count_up(sessions: sessionmaker, table, key_column, key: str, **values) -> int:
    """Set ``values`` on the row ``key`` and add one to its ``version`` (the row is made with
    version 1 if there is none); the new version.  Two processes at once: each gets its own."""
    return _upsert(sessions, table, key_column, key, {"version": table.c.version + 1, **values},
                   {"version": 1, **values}, returning=table.c.version)


def _upsert(sessions: sessionmaker, table, key_column, key: str, changed: dict, made: dict,
            returning=None):
    """Update the row ``key`` with ``changed``, or insert it with ``made`` when there is none
    (an insert that loses to another process's is followed by an update); the ``returning``
    column's new value, if one is named."""
    column = key_column if returning is None else returning
    for _ in range(2):                 # the row made by another process between our two tries
        with sessions.begin() as s:
            done = s.connection().execute(update(table).where(key_column == key).values(**changed)
                                          .returning(column)).first()
            if done is not None:
                return done[0]
        try:
            with sessions.begin() as s:
                s.connection().execute(table.insert().values({key_column.name: key, **made}))
            return made.get(column.name, key)
        except IntegrityError:
            continue
    raise RuntimeError(f"{table.name} {key}: neither updated nor inserted")


# -- each node's live picture, for the admin web of any node ----------------------------------

class NodeStatus(Base):
    """The last live picture a node published (queues, waiting calls per queue, agents)."""
    __tablename__ = "node_status"

    node: Mapped[str] = mapped_column(String(64), primary_key=True)
    snapshot: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


NODES = NodeStatus.__table__


class NodeBoard:
    def __init__(self, sessions: sessionmaker) -> None:
        self.sessions = sessions

    def put(self, node: str, snapshot: dict, now: datetime) -> None:
        values = {"snapshot": snapshot, "updated_at": now}
        _upsert(self.sessions, NODES, NODES.c.node, node, values, values)

    def fresh(self, since: datetime) -> dict[str, dict]:
        """``{node: snapshot}`` of the nodes that published at or after ``since``."""
        with self.sessions() as s:
            rows = s.connection().execute(select(NODES.c.node, NODES.c.snapshot)
                                          .where(NODES.c.updated_at >= since))
            return {node: snapshot for node, snapshot in rows}
