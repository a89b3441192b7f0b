"""Campaigns in the database: create, change state, claim due contacts exactly once, record
attempt results, DNC, crash recovery.  Every query is portable (SQLite and PostgreSQL).

Claiming (the exactly-once step, see ``callpilot.infra.db.campaigns``): candidates are read
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL, so two nodes never even wait on the same rows),
then each is taken by a conditional ``UPDATE ... WHERE status='pending' AND attempts=<seen>``
and its attempt row inserted in the same transaction.  On SQLite the read transaction ends
first and every claim is a transaction that starts with its write, so it waits for the
file's write lock and re-reads the row instead of failing on a stale snapshot.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from callpilot.infra.db.calendars import CalendarDay
from callpilot.infra.db.campaigns import (GLOBAL_DNC, Campaign, CampaignAttempt,
                                          CampaignContact, DncEntry)
from outbound.model import (DEFAULT_REPLIES, DEFAULT_RETRY_DELAYS, CallingWindow, CampaignState,
                            ContactOutcome, ContactStatus)
from outbound.policy.pacing import ABANDON_PERIOD_DAYS
from outbound.policy.retry import next_attempt_at
from outbound.policy.window import next_open

logger = logging.getLogger(__name__)

CHANNEL_PREFIX = "cp-out-"


def channel_id(attempt_id: int) -> str:
    """The ARI channel id of an attempt: derived from its primary key, never random."""
    return f"{CHANNEL_PREFIX}{attempt_id}"


def attempt_of_channel(channel: str) -> int | None:
    tail = channel[len(CHANNEL_PREFIX):] if channel.startswith(CHANNEL_PREFIX) else ""
    return int(tail) if tail.isdigit() else None


class CampaignError(ValueError):
    """A campaign command cannot be applied (unknown name, bad transition, bad setting)."""


@dataclass(frozen=True)
class Claim:
    attempt_id: int
    number: int
    campaign: str
    contact_id: int
    phone: str
    name: str
    language: str
    variables: dict

    @property
    def channel_id(self) -> str:
        return channel_id(self.attempt_id)


TRANSITIONS = {CampaignState.DRAFT: {CampaignState.RUNNING},
               CampaignState.RUNNING: {CampaignState.PAUSED, CampaignState.DONE},
               CampaignState.PAUSED: {CampaignState.RUNNING, CampaignState.DONE},
               CampaignState.DONE: set()}


def window_of(campaign: Campaign, closed: list[str] = ()) -> CallingWindow:
    return CallingWindow.parse(campaign.window_start, campaign.window_end,
                               [*campaign.excluded_dates, *closed])


def closed_days(s: Session, campaign: Campaign) -> list[str]:
    """The closed days of the campaign's calendar (``calendars import``), as ISO dates."""
    if not campaign.calendar:
        return []
    return [d.isoformat() for d in s.scalars(select(CalendarDay.day).where(
        CalendarDay.calendar == campaign.calendar))]


class CampaignStore:
    def __init__(self, sessions: sessionmaker, node: str = "serve", earlier_names: tuple[str, ...] = ()):
        """``node``: claimed_by on the attempts it claims; ``earlier_names``: names this node
        claimed under before (its attempts in flight are still its own after an upgrade)."""
        self.sessions = sessions
        self.node = node
        self.names = (node, *earlier_names)

    # -- campaigns ---------------------------------------------------------------------
    def create(self, name: str, template: str, now: datetime, **settings) -> int:
        settings.setdefault("replies", dict(DEFAULT_REPLIES))
        settings.setdefault("retry_delays", dict(DEFAULT_RETRY_DELAYS))
        CallingWindow.parse(settings.get("window_start", "08:00"), settings.get("window_end", "21:00"),
                            settings.get("excluded_dates", []))     # validates
        with self.sessions() as s:
            if s.scalar(select(Campaign.id).where(Campaign.name == name)) is not None:
                raise CampaignError(f"campaign {name!r} exists")
            row = Campaign(name=name, template=template, created_at=now,
                           state=CampaignState.DRAFT.value, **settings)
            s.add(row)
            s.commit()
            logger.info("campaign %s created (id %d, mode %s)", name, row.id, row.mode)
            return row.id

    def get(self, name: str) -> Campaign:
        with self.sessions() as s:
            row = s.scalar(select(Campaign).where(Campaign.name == name))
        if row is None:
            raise CampaignError(f"no campaign {name!r}")
        return row

    def running(self) -> list[Campaign]:
        with self.sessions() as s:
            return list(s.scalars(select(Campaign).where(
                Campaign.state == CampaignState.RUNNING.value).order_by(Campaign.id)))

    def set_state(self, name: str, new: CampaignState) -> None:
        row = self.get(name)
        old = CampaignState(row.state)
        if new not in TRANSITIONS[old]:
            raise CampaignError(f"campaign {name}: cannot go from {old.value} to {new.value}")
        with self.sessions() as s:
            done = s.execute(update(Campaign).where(Campaign.id == row.id, Campaign.state == old.value)
                             .values(state=new.value)).rowcount
            s.commit()
        if done != 1:
            raise CampaignError(f"campaign {name}: changed meanwhile, try again")
        logger.info("campaign %s: %s -> %s", name, old.value, new.value)

    # -- DNC ---------------------------------------------------------------------------
    def add_dnc(self, phone: str, scope: str, reason: str, now: datetime) -> None:
        with self.sessions() as s:
            if s.get(DncEntry, (phone, scope)) is None:
                s.add(DncEntry(phone=phone, scope=scope, reason=reason, added_at=now))
                s.commit()
        logger.info("DNC %s added for %s (%s)", phone, "every campaign" if scope == GLOBAL_DNC else scope, reason)

    def dnc_numbers(self, s: Session, phones: list[str], campaign: str) -> set[str]:
        if not phones:
            return set()
        return set(s.scalars(select(DncEntry.phone).where(
            DncEntry.phone.in_(phones), DncEntry.scope.in_([GLOBAL_DNC, campaign]))))

    def numbers_in_flight(self, s: Session, phones: list[str]) -> set[str]:
        """Numbers with an attempt in flight in any campaign (the over-dial guard VICIdial
        had to add after DB lock-ups: one number is never rung twice at once)."""
        if not phones:
            return set()
        return set(s.scalars(select(CampaignContact.phone).join(
            CampaignAttempt, CampaignAttempt.contact_id == CampaignContact.id).where(
            CampaignContact.phone.in_(phones), CampaignAttempt.outcome.is_(None))))

    # -- claiming ----------------------------------------------------------------------
    def claim_due(self, campaign: Campaign, now: datetime, limit: int) -> list[Claim]:
        """Up to ``limit`` contacts due now, inside their calling window and not on a DNC
        list, each claimed with a new attempt row (committed before anything is dialled)."""
        if limit <= 0:
            return []
        with self.sessions() as s:
            pg = s.get_bind().dialect.name == "postgresql"
            query = (select(CampaignContact).where(
                CampaignContact.campaign_id == campaign.id,
                CampaignContact.status == ContactStatus.PENDING.value,
                CampaignContact.next_attempt_at <= now)
                .order_by(CampaignContact.next_attempt_at, CampaignContact.id).limit(limit * 4))
            if pg:
                query = query.with_for_update(skip_locked=True)
            rows = list(s.scalars(query))
            blocked = self.dnc_numbers(s, [r.phone for r in rows], campaign.name)
            busy = self.numbers_in_flight(s, [r.phone for r in rows])
            window = window_of(campaign, closed_days(s, campaign))
            if not pg:
                s.commit()         # end the read; each claim below starts with its write
            claims = []
            for row in rows:
                if len(claims) >= limit:
                    break
                if row.phone in busy:          # never two calls to one number at once
                    continue
                busy.add(row.phone)
                claim = self._claim_one(s, campaign, window, row, now, row.phone in blocked)
                if claim is not None:
                    claims.append(claim)
                if not pg:
                    s.commit()
            s.commit()
        return claims

    def _claim_one(self, s: Session, campaign: Campaign, window: CallingWindow,
                   row: CampaignContact, now: datetime, on_dnc: bool) -> Claim | None:
        seen = row.attempts      # read before any UPDATE: the ORM synchronises ``row`` after one
        guard = (CampaignContact.id == row.id, CampaignContact.status == ContactStatus.PENDING.value,
                 CampaignContact.attempts == seen)
        if on_dnc:
            s.execute(update(CampaignContact).where(*guard).values(
                status=ContactStatus.DONE.value, outcome=ContactOutcome.DNC.value, next_attempt_at=None))
            logger.info("contact %d (%s): on a DNC list, not dialled", row.id, row.phone)
            return None
        opens = next_open(now, ZoneInfo(row.timezone), window)
        if opens is None or opens > now:
            s.execute(update(CampaignContact).where(*guard).values(
                next_attempt_at=opens, status=ContactStatus.PENDING.value if opens else ContactStatus.DONE.value))
            logger.debug("contact %d: outside its calling window, next %s", row.id, opens)
            return None
        taken = s.execute(update(CampaignContact).where(*guard).values(
            status=ContactStatus.DIALLING.value, attempts=seen + 1)).rowcount
        if taken != 1:
            return None          # another node or process claimed it first
        attempt = CampaignAttempt(campaign_id=campaign.id, contact_id=row.id, number=seen + 1,
                                  claimed_by=self.node, claimed_at=now)
        s.add(attempt)
        s.flush()
        logger.info("contact %d (%s): attempt %d claimed as %s", row.id, row.phone, attempt.number,
                    channel_id(attempt.id))
        return Claim(attempt.id, attempt.number, campaign.name, row.id, row.phone, row.name,
                     row.language or campaign.language, dict(row.variables or {}))

    # -- results -----------------------------------------------------------------------
    def finish(self, attempt_id: int, outcome: ContactOutcome, now: datetime, *, reply: str = "",
               amd: str = "", live: bool = False, abandoned: bool = False, detail: str = "") -> None:
        """Close an attempt (first result wins) and schedule or finish its contact."""
        with self.sessions() as s:
            attempt = s.get(CampaignAttempt, attempt_id)
            if attempt is None or attempt.outcome is not None:
                return
            contact = s.get(CampaignContact, attempt.contact_id)
            campaign = s.get(Campaign, attempt.campaign_id)
            attempt.outcome, attempt.ended_at, attempt.detail = outcome.value, now, detail
            attempt.reply = reply or attempt.reply
            attempt.amd_status = amd or attempt.amd_status
            attempt.live_answer = attempt.live_answer or live
            attempt.abandoned = abandoned
            self._schedule(contact, campaign, window_of(campaign, closed_days(s, campaign)),
                           outcome, now, reply)
            s.commit()
        logger.info("attempt %d: %s%s", attempt_id, outcome.value, f" ({detail})" if detail else "")

    def _schedule(self, contact: CampaignContact, campaign: Campaign, window: CallingWindow,
                  outcome: ContactOutcome, now: datetime, reply: str) -> None:
        when = next_attempt_at(outcome, contact.attempts, campaign.max_attempts,
                               campaign.retry_delays or {}, now)
        if when is not None:
            when = next_open(when, ZoneInfo(contact.timezone), window)
        contact.outcome = outcome.value
        contact.last_reply = reply or contact.last_reply
        contact.next_attempt_at = when
        contact.status = (ContactStatus.PENDING if when else ContactStatus.DONE).value

    def mark(self, attempt_id: int, **values) -> None:
        """Facts learnt during the call (answered_at, amd_status, live_answer, reply)."""
        with self.sessions() as s:
            s.execute(update(CampaignAttempt).where(CampaignAttempt.id == attempt_id).values(**values))
            s.commit()

    def attempt(self, attempt_id: int) -> CampaignAttempt | None:
        with self.sessions() as s:
            return s.get(CampaignAttempt, attempt_id)

    def claim_of(self, attempt_id: int) -> tuple[Claim, Campaign]:
        """An attempt's claim and campaign, as the dialler had them (re-adoption)."""
        with self.sessions() as s:
            a = s.get(CampaignAttempt, attempt_id)
            row, campaign = s.get(CampaignContact, a.contact_id), s.get(Campaign, a.campaign_id)
        return Claim(a.id, a.number, campaign.name, row.id, row.phone, row.name,
                     row.language or campaign.language, dict(row.variables or {})), campaign

    def open_attempts(self) -> list[CampaignAttempt]:
        """Attempts in flight claimed by THIS node (another node's calls live in its own
        Asterisk: only that node can tell whether they still ring)."""
        with self.sessions() as s:
            return list(s.scalars(select(CampaignAttempt).where(
                CampaignAttempt.outcome.is_(None), CampaignAttempt.claimed_by.in_(self.names))))

    def close_stale(self, now: datetime, older_than: timedelta) -> list[int]:
        """Attempts with no result long after any call could have ended (their node died and
        never came back): recorded as unknown, their contacts rescheduled as a new attempt."""
        with self.sessions() as s:
            stale = list(s.scalars(select(CampaignAttempt.id).where(
                CampaignAttempt.outcome.is_(None), CampaignAttempt.claimed_at < now - older_than)))
        for attempt_id in stale:
            self.finish(attempt_id, ContactOutcome.UNKNOWN, now, detail=f"no result after {older_than}")
        return stale

    # -- pacing inputs -------------------------------------------------------------------
    def in_flight(self, campaign_id: int) -> int:
        with self.sessions() as s:
            return s.scalar(select(func.count()).select_from(CampaignAttempt).where(
                CampaignAttempt.campaign_id == campaign_id, CampaignAttempt.outcome.is_(None))) or 0

    def abandon_counts(self, campaign_id: int, now: datetime) -> tuple[int, int]:
        """(live answers, abandoned) over the TSR's 30-day period."""
        since = now - timedelta(days=ABANDON_PERIOD_DAYS)
        with self.sessions() as s:
            live = s.scalar(select(func.count()).select_from(CampaignAttempt).where(
                CampaignAttempt.campaign_id == campaign_id, CampaignAttempt.live_answer.is_(True),
                CampaignAttempt.claimed_at >= since)) or 0
            dropped = s.scalar(select(func.count()).select_from(CampaignAttempt).where(
                CampaignAttempt.campaign_id == campaign_id, CampaignAttempt.abandoned.is_(True),
                CampaignAttempt.claimed_at >= since)) or 0
        return live, dropped
