"""Durable callbacks: create (de-duplicated), claim before dialling, finish, close.

Mechanism only: *which* callback to release, whether to retry and when is decided by
``acd`` (``acd.policy.callbacks``) and handed in as arguments.  What this module guarantees,
on SQLite and PostgreSQL alike, also between several processes on one database:

* one open callback per number and queue (unique ``open_key``): :meth:`create` returns the
  existing one instead of a second;
* a callback is claimed by exactly one process, in the transaction that inserts its attempt:
  a conditional ``UPDATE ... WHERE state = 'pending'`` (on PostgreSQL preceded by
  ``SELECT ... FOR UPDATE SKIP LOCKED``, so a second node skips a row being claimed instead
  of queueing behind it);
* never two calls to one number at once (unique ``dialling_number``);
* an attempt is finished once (conditional on its outcome still being NULL).

The store is synchronous; ``serve`` runs it off the event loop.
"""
from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from callpilot.infra.db.callbacks import (
    CUSTOMER_OUTCOMES,
    OPEN_STATES,
    AttemptOutcome,
    Callback,
    CallbackAttempt,
    CallbackSource,
    CallbackState,
    agent_channel_id,
    customer_channel_id,
    open_key,
)

logger = logging.getLogger(__name__)

_OPEN = tuple(state.value for state in OPEN_STATES)


@dataclass(frozen=True)
class NewCallback:
    number: str                 # E.164, already validated
    queue: str
    entered_at: datetime        # the ORIGINAL queue-entry time
    source: CallbackSource
    expires_at: datetime
    ticket: dict = field(default_factory=dict)
    name: str = ""
    reason: str = ""
    context: dict = field(default_factory=dict)
    call_id: str | None = None
    not_before: datetime | None = None   # a window's start
    window_end: datetime | None = None


@dataclass(frozen=True)
class Claim:
    """One claimed attempt: the callback as it was claimed and the legs' channel ids."""
    callback: Callback
    attempt_id: int
    agent: str | None

    @property
    def customer_channel(self) -> str:
        return customer_channel_id(self.attempt_id)

    @property
    def agent_channel(self) -> str:
        return agent_channel_id(self.attempt_id)


class CallbackStore:
    def __init__(self, sessions: sessionmaker, instance: str = "serve", earlier_names: tuple[str, ...] = ()):
        """``instance``: this node's name, kept on the callbacks it claims (each node on one
        database needs its own); ``earlier_names``: names it claimed under before (its
        unfinished attempts are still its own after an upgrade)."""
        self.sessions = sessions
        self.instance = instance
        self.names = (instance, *earlier_names)

    # -- creating ------------------------------------------------------------------------
    def create(self, new: NewCallback, now: datetime) -> tuple[Callback, bool]:
        """Insert the callback, or return the open one of this number and queue.

        ``(callback, created)``; a duplicate keeps the older callback (its place in line)."""
        row = Callback(id=uuid.uuid4().hex, number=new.number, queue=new.queue,
                       entered_at=new.entered_at, ticket=dict(new.ticket), name=new.name,
                       reason=new.reason, context=dict(new.context), source=new.source.value,
                       call_id=new.call_id, state=CallbackState.PENDING.value,
                       open_key=open_key(new.queue, new.number), attempts=0, created_at=now,
                       expires_at=new.expires_at, not_before=new.not_before,
                       window_end=new.window_end, detail="")
        try:
            with self.sessions.begin() as s:
                s.add(row)
        except IntegrityError:
            existing = self.open_for(new.queue, new.number)
            if existing is None:      # closed between the insert and this read: try once more
                return self.create(new, now)
            logger.info("callback for %s in %s already open (%s): not duplicated",
                        new.number, new.queue, existing.id)
            return existing, False
        logger.info("callback %s: %s in %s from %s, entered %s, state pending", row.id,
                    new.number, new.queue, new.source.value, new.entered_at.isoformat())
        return row, True

    # -- reading -------------------------------------------------------------------------
    def get(self, callback_id: str) -> Callback | None:
        with self.sessions() as s:
            return s.get(Callback, callback_id)

    def open_for(self, queue: str, number: str) -> Callback | None:
        with self.sessions() as s:
            return s.scalars(select(Callback).where(Callback.open_key == open_key(queue, number))).first()

    def in_states(self, states: Iterable[CallbackState] | None = None, limit: int = 1000) -> list[Callback]:
        """Callbacks in ``states`` (all when None), oldest queue entry first."""
        query = select(Callback).order_by(Callback.entered_at, Callback.id).limit(limit)
        if states is not None:
            query = query.where(Callback.state.in_([state.value for state in states]))
        with self.sessions() as s:
            return list(s.scalars(query))

    def search(self, *, queue: str | None = None, states: Iterable[CallbackState] | None = None,
               since: datetime | None = None, until: datetime | None = None,
               limit: int = 500) -> list[Callback]:
        """Callbacks for people to read (the admin web): newest request first, filtered by
        queue, states and the time they were requested (``since`` <= created_at < ``until``)."""
        query = select(Callback).order_by(Callback.created_at.desc(), Callback.id).limit(limit)
        if queue:
            query = query.where(Callback.queue == queue)
        if states is not None:
            query = query.where(Callback.state.in_([state.value for state in states]))
        if since is not None:
            query = query.where(Callback.created_at >= since)
        if until is not None:
            query = query.where(Callback.created_at < until)
        with self.sessions() as s:
            return list(s.scalars(query))

    def attempts_of(self, callback_ids: Iterable[str]) -> dict[str, list[CallbackAttempt]]:
        """The attempts of several callbacks at once, oldest first per callback."""
        ids = list(callback_ids)
        found: dict[str, list[CallbackAttempt]] = {cid: [] for cid in ids}
        if not ids:
            return found
        with self.sessions() as s:
            for attempt in s.scalars(select(CallbackAttempt).where(CallbackAttempt.callback_id.in_(ids))
                                     .order_by(CallbackAttempt.id)):
                found[attempt.callback_id].append(attempt)
        return found

    def ringing_agent(self, agent: str) -> tuple[Callback, CallbackAttempt] | None:
        """The callback whose attempt is under way with ``agent`` (no outcome yet): what the
        agent's screen shows while their phone rings for it."""
        query = (select(Callback, CallbackAttempt).join(CallbackAttempt, CallbackAttempt.callback_id == Callback.id)
                 .where(CallbackAttempt.agent == agent, CallbackAttempt.outcome.is_(None))
                 .order_by(CallbackAttempt.id.desc()).limit(1))
        with self.sessions() as s:
            row = s.execute(query).first()
        return (row[0], row[1]) if row is not None else None

    def attempts(self, callback_id: str) -> list[CallbackAttempt]:
        with self.sessions() as s:
            return list(s.scalars(select(CallbackAttempt).where(CallbackAttempt.callback_id == callback_id)
                                  .order_by(CallbackAttempt.id)))

    def unfinished_attempts(self, mine_only: bool = False) -> list[CallbackAttempt]:
        """Attempts with no outcome: after a crash, the ones to look for in Asterisk.
        ``mine_only``: those claimed by this instance (another node's legs are in its own
        Asterisk, not ours)."""
        query = select(CallbackAttempt).where(CallbackAttempt.outcome.is_(None)).order_by(CallbackAttempt.id)
        if mine_only:
            query = query.join(Callback, Callback.id == CallbackAttempt.callback_id).where(
                Callback.claimed_by.in_(self.names))
        with self.sessions() as s:
            return list(s.scalars(query))

    # -- claiming ------------------------------------------------------------------------
    def claim(self, callback_id: str, agent: str | None, now: datetime) -> Claim | None:
        """Claim a pending callback for one attempt, or None if another process has it, it
        is no longer pending, or its number is being dialled for another callback."""
        try:
            with self.sessions.begin() as s:
                return self._claim(s, callback_id, agent, now)
        except IntegrityError:
            logger.info("callback %s: its number is being dialled for another callback: not claimed",
                        callback_id)
            return None

    def _claim(self, s: Session, callback_id: str, agent: str | None, now: datetime) -> Claim | None:
        if s.get_bind().dialect.name == "postgresql" and not self._lock_pending(s, callback_id):
            return None
        won = s.execute(update(Callback)
                        .where(Callback.id == callback_id, Callback.state == CallbackState.PENDING.value)
                        .values(state=CallbackState.DIALLING.value, dialling_number=Callback.number,
                                claimed_by=self.instance))
        if won.rowcount != 1:
            return None
        attempt = CallbackAttempt(callback_id=callback_id, agent=agent, started_at=now, detail="")
        s.add(attempt)
        s.flush()
        attempt.channel_id = customer_channel_id(attempt.id)
        callback = s.get(Callback, callback_id)
        s.refresh(callback)
        logger.info("callback %s: pending -> dialling, attempt %d (agent %s) by %s", callback_id,
                    attempt.id, agent, self.instance)
        return Claim(callback, attempt.id, agent)

    @staticmethod
    def _lock_pending(s: Session, callback_id: str) -> bool:
        """PostgreSQL: lock the row unless another transaction holds it (then skip it)."""
        query = (select(Callback.id).where(Callback.id == callback_id,
                                           Callback.state == CallbackState.PENDING.value)
                 .with_for_update(skip_locked=True))
        return s.scalars(query).first() is not None

    def customer_dialled(self, attempt_id: int, now: datetime) -> None:
        """Mark the attempt as reaching for the customer (written before the leg is
        originated: after a crash, an attempt without the mark never rang the customer)."""
        with self.sessions.begin() as s:
            s.execute(update(CallbackAttempt).where(CallbackAttempt.id == attempt_id)
                      .values(customer_dialled_at=now))

    # -- finishing -----------------------------------------------------------------------
    def finish_attempt(self, attempt_id: int, outcome: AttemptOutcome, now: datetime, *,
                       next_state: CallbackState, not_before: datetime | None = None,
                       detail: str = "") -> bool:
        """Record the outcome of an attempt and move its callback to ``next_state`` (decided
        by the caller); False if the attempt already had an outcome."""
        with self.sessions.begin() as s:
            done = s.execute(update(CallbackAttempt)
                             .where(CallbackAttempt.id == attempt_id, CallbackAttempt.outcome.is_(None))
                             .values(outcome=outcome.value, ended_at=now, detail=detail))
            if done.rowcount != 1:
                return False
            callback_id = s.get(CallbackAttempt, attempt_id).callback_id
            counted = 1 if outcome in CUSTOMER_OUTCOMES else 0
            values = {"attempts": Callback.attempts + counted, "not_before": not_before,
                      **self._state_values(next_state, now, detail)}
            s.execute(update(Callback).where(Callback.id == callback_id).values(**values))
        logger.info("callback %s: attempt %d %s -> %s%s", callback_id, attempt_id, outcome.value,
                    next_state.value, f" not before {not_before.isoformat()}" if not_before else "")
        return True

    @staticmethod
    def _state_values(state: CallbackState, now: datetime, detail: str) -> dict:
        values: dict = {"state": state.value, "dialling_number": None}
        if state not in OPEN_STATES:
            values.update(open_key=None, closed_at=now, detail=detail)
        return values

    def close(self, callback_id: str, state: CallbackState, now: datetime, detail: str = "",
              *, only_from: Iterable[CallbackState] = (CallbackState.PENDING,)) -> bool:
        """Close a callback (cancelled, expired, merged, failed) if it is in ``only_from``."""
        with self.sessions.begin() as s:
            return self.close_in(s, callback_id, state, now, detail, only_from=only_from)

    @classmethod
    def close_in(cls, s: Session, callback_id: str, state: CallbackState, now: datetime, detail: str = "",
                 *, only_from: Iterable[CallbackState] = (CallbackState.PENDING,)) -> bool:
        """:meth:`close` inside the caller's transaction (the admin web commits its audit
        entry with it); the caller commits."""
        if state in OPEN_STATES:
            raise ValueError(f"close: {state.value} is not a closed state")
        sources = [source.value for source in only_from]
        done = s.execute(update(Callback).where(Callback.id == callback_id, Callback.state.in_(sources))
                         .values(**cls._state_values(state, now, detail)))
        if done.rowcount:
            logger.info("callback %s: -> %s (%s)", callback_id, state.value, detail)
        return bool(done.rowcount)

    def merge_into_call(self, queue: str, number: str, call_id: str, now: datetime) -> Callback | None:
        """The customer called in again: close their pending callback as merged and return it
        (the live call takes its older place); None if there was none pending."""
        pending = self.open_for(queue, number)
        if pending is None or pending.state != CallbackState.PENDING.value:
            return None
        if not self.close(pending.id, CallbackState.MERGED, now, f"merged into live call {call_id}"):
            return None
        return pending

    def expire_due(self, now: datetime) -> list[str]:
        """Close every pending callback whose expiry has passed; their ids."""
        with self.sessions() as s:
            due = list(s.scalars(select(Callback.id).where(Callback.state == CallbackState.PENDING.value,
                                                           Callback.expires_at <= now)))
        return [cid for cid in due if self.close(cid, CallbackState.EXPIRED, now, "expired before served")]
