"""Callbacks in the live ACD: pending ones join the line, released ones are placed.

* **Pending** callbacks live in the database (``callpilot.infra.db.callback_store``); this
  service keeps a copy refreshed every ``REFRESH_SECONDS`` by a task of its own (the web app
  inserts rows too; the routing pass never waits on the database) and hands them to the
  dispatcher's matching as :class:`acd.policy.callbacks.PendingCallback`
  with their ORIGINAL entry time and ticket.
* **Placing** (agent first): claim in the database (the attempt row), reserve the agent,
  ring the agent (``callback-<attempt>-agent``), whisper to the agent (name, reason, wait),
  then ring the customer (``callback-<attempt>-customer``) through the dedicated callback
  endpoint; the answered customer leg goes through answering-machine detection and, if a
  person answered, joins the agent in the attempt's mixing bridge.
* **Outcomes** per :class:`AttemptOutcome`; the retry rules (:mod:`acd.policy.callbacks`)
  decide what follows.  The agent not answering or hanging up before the customer was
  dialled is not a customer attempt: the callback goes back to the line at once.
* **Restart**: attempts without an outcome are looked up in Asterisk by their channel ids;
  live legs are adopted (never dialled again), an attempt that reached for the customer and
  whose leg is gone is recorded as ``unknown_after_crash`` (retried after the normal delay).

Every attempt moves through :class:`AttemptState`; each transition is logged with the
callback, attempt and agent ids.
"""
from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from acd.agents import AgentRoster, LiveAgent
from acd.callback_actions import CallbackControl
from acd.model import AgentState, CallView, ModelError, steps_from_list
from acd.policy.callbacks import PendingCallback, RetryRules, after_attempt, callbacks_ahead
from acd.queues import QueueBook
from callpilot.infra.db.callback_store import CallbackStore, Claim, NewCallback
from callpilot.infra.db.callbacks import (
    AttemptOutcome,
    Callback,
    CallbackAttempt,
    CallbackSource,
    CallbackState,
    agent_channel_id,
    attempt_of_channel,
    customer_channel_id,
)
from callpilot.infra.db.records import utcnow
from callpilot.infra.messages import MessageCatalogue, Said, SpokenMessages
from callpilot.infra.periodic import Periodic

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 2.0
WHISPER_DEADLINE = 20.0
# Q.850 causes of a customer leg that ended before it was answered
BUSY_CAUSES = frozenset({17})
INVALID_CAUSES = frozenset({1, 3, 22, 28})


class AttemptState(enum.Enum):
    RESERVED = "reserved"            # claimed, agent reserved, nothing rung yet
    AGENT_RINGING = "agent_ringing"
    WHISPER = "whisper"
    CUSTOMER_RINGING = "customer_ringing"
    SCREENING = "screening"          # answered; answering-machine detection running
    CONNECTED = "connected"
    ENDED = "ended"


# Agent first: RESERVED -> AGENT_RINGING -> WHISPER -> CUSTOMER_RINGING -> SCREENING -> CONNECTED.
# Customer first: RESERVED -> CUSTOMER_RINGING -> SCREENING -> AGENT_RINGING -> WHISPER -> CONNECTED.
ATTEMPT_TRANSITIONS = {
    AttemptState.RESERVED: {AttemptState.AGENT_RINGING, AttemptState.CUSTOMER_RINGING, AttemptState.ENDED},
    AttemptState.AGENT_RINGING: {AttemptState.WHISPER, AttemptState.ENDED},
    AttemptState.WHISPER: {AttemptState.CUSTOMER_RINGING, AttemptState.CONNECTED, AttemptState.ENDED},
    AttemptState.CUSTOMER_RINGING: {AttemptState.SCREENING, AttemptState.ENDED},
    AttemptState.SCREENING: {AttemptState.CONNECTED, AttemptState.AGENT_RINGING, AttemptState.ENDED},
    AttemptState.CONNECTED: {AttemptState.ENDED},
    AttemptState.ENDED: set(),
}


@dataclass
class LiveAttempt:
    id: int
    callback: Callback
    agent: str | None
    state: AttemptState = AttemptState.RESERVED
    started: float = field(default_factory=time.monotonic)
    answered: float = 0.0
    customer_first: bool = False

    @property
    def agent_channel(self) -> str:
        return agent_channel_id(self.id)

    @property
    def customer_channel(self) -> str:
        return customer_channel_id(self.id)

    def move(self, new: AttemptState, why: str = "") -> None:
        if new not in ATTEMPT_TRANSITIONS[self.state]:
            raise ModelError(f"callback attempt {self.id}: {self.state.value} -> {new.value}")
        logger.info("callback %s attempt %d agent=%s: %s -> %s %s", self.callback.id, self.id, self.agent,
                    self.state.value, new.value, why)
        self.state = new


@dataclass(frozen=True)
class CallbackSettings:
    ring_timeout: int = 15              # the agent's phone
    customer_ring_seconds: int = 30
    expiry_seconds: int = 4 * 3600
    retry: RetryRules = field(default_factory=RetryRules)
    cancel_key: str = "9"
    customer_first: frozenset[str] = frozenset()    # queues whose callbacks ring the customer first


def retry_rules(max_attempts: int, retry_seconds: float, voicemail_seconds: float) -> RetryRules:
    """The rules per outcome: no answer, busy and unknown after a crash retried after
    ``retry_seconds``, voicemail after ``voicemail_seconds``, an invalid number never."""
    delays = {AttemptOutcome.NO_ANSWER: retry_seconds, AttemptOutcome.BUSY: retry_seconds,
              AttemptOutcome.UNKNOWN_AFTER_CRASH: retry_seconds,
              AttemptOutcome.VOICEMAIL: voicemail_seconds, AttemptOutcome.INVALID_NUMBER: None}
    return RetryRules(max_attempts, delays, frozenset({AttemptOutcome.AGENT_NO_ANSWER}))


class AgentHooks:
    """What the service asks of the dispatcher about agents (it owns their wrap-up)."""

    def not_responding(self, agent: LiveAgent, why: str) -> None: ...
    def done(self, agent: LiveAgent, call_id: str, talked: bool) -> None: ...
    async def hold(self, agent: LiveAgent, call_id: str) -> str | None: ...   # None: held


class CallbackService:
    def __init__(self, store: CallbackStore, control: CallbackControl, roster: AgentRoster,
                 queues: QueueBook, settings: CallbackSettings, messages: SpokenMessages,
                 events, agents: AgentHooks, playback_done: Callable[[str, str, float], Awaitable[bool]]):
        """``messages``: the whisper (in the agent's language) and the customer's hold
        message (in the language the caller was served in) come from its catalogue."""
        self.store = store
        self.control = control
        self.roster = roster
        self.queues = queues
        self.settings = settings
        self.messages = messages
        self.events = events
        self.agents = agents
        self.playback_done = playback_done
        self.pending: dict[str, Callback] = {}
        self.live: dict[int, LiveAttempt] = {}
        self._claiming: dict[str, Callback] = {}    # reserved in a pass, claim in flight
        self._refreshed = 0.0
        self._views: dict[str, CallView] = {}
        self.kick: Callable[[], None] = lambda: None     # the dispatcher's, set when attached
        # nothing is released before the legs left by a previous run are settled (recover)
        self.recovered = asyncio.Event()
        self._periodic = Periodic("callback-refresh", self._refresh_step, REFRESH_SECONDS / 2)

    def start(self) -> None:
        """Keep the pending copy fresh: rows from the web app, retries and windows coming due."""
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()

    async def _refresh_step(self) -> None:
        try:
            await self.refresh()
        finally:
            if self.pending:
                self.kick()          # a pass to release what came due

    # -- the line -----------------------------------------------------------------------
    async def refresh(self, force: bool = False) -> None:
        """Reload pending callbacks (and close expired ones) at most every REFRESH_SECONDS."""
        now = time.monotonic()
        if not force and now - self._refreshed < REFRESH_SECONDS:
            return
        self._refreshed = now
        for callback_id in await asyncio.to_thread(self.store.expire_due, utcnow()):
            callback = self.pending.pop(callback_id, None)
            self.events.callback_closed(callback_id, callback.queue if callback else "",
                                        CallbackState.EXPIRED.value, "expired before served")
        rows = await asyncio.to_thread(self.store.in_states, [CallbackState.PENDING])
        busy = self._claiming.keys() | {attempt.callback.id for attempt in self.live.values()}
        self.pending = {row.id: row for row in rows if row.id not in busy}

    def pending_views(self, now_mono: float, live_calls: Iterable[str] = ()) -> list[PendingCallback]:
        """The pending callbacks for the matching; one whose call is still in ``live_calls``
        (the caller is leaving the line for it right now) is left out, never matched twice."""
        if not self.recovered.is_set():
            return []
        wall, live = utcnow(), set(live_calls)
        return [self._pending_view(row, now_mono, wall) for row in self.pending.values()
                if row.call_id is None or row.call_id not in live]

    def _pending_view(self, row: Callback, now_mono: float, wall: datetime) -> PendingCallback:
        def mono(at: datetime | None) -> float | None:
            return None if at is None else now_mono - (wall - at).total_seconds()
        view = self._views.get(row.id)
        if view is None:
            view = self._views[row.id] = self._ticket_view(row, mono(row.entered_at))
        return PendingCallback(row.id, row.number, view, mono(row.expires_at), mono(row.not_before))

    def _ticket_view(self, row: Callback, entered: float) -> CallView:
        ticket = row.ticket or {}
        settings = self.queues.get(row.queue)
        steps = ticket.get("steps")
        try:
            steps = settings.routing_steps() if steps is None else steps_from_list(steps)
        except ModelError:
            logger.exception("callback %s: bad steps in its ticket: queue defaults used", row.id)
            steps = settings.routing_steps()
        return CallView(id=f"callback:{row.id}", queue=row.queue, priority=int(ticket.get("priority", 0)),
                        enqueued_at=entered, attributes=dict(ticket.get("attributes") or {}),
                        steps=tuple(steps), required_skills=dict(ticket.get("skills") or {}),
                        skill=settings.queue_skill or None)

    def dialling_numbers(self) -> frozenset[str]:
        return frozenset([*(a.callback.number for a in self.live.values()),
                          *(c.number for c in self._claiming.values())])

    def ahead_of(self, call_view: CallView, now_mono: float) -> int:
        """Pending callbacks ahead of a live call in its queue (for its position)."""
        return callbacks_ahead(call_view, self.pending_views(now_mono))

    # -- asking for one -----------------------------------------------------------------
    async def request(self, *, number: str, queue: str, entered_at: datetime, ticket: dict, name: str,
                      reason: str, call_id: str | None, source: CallbackSource) -> tuple[Callback, bool]:
        """A caller took a callback (number already E.164): keeps ``entered_at``."""
        now = utcnow()
        new = NewCallback(number=number, queue=queue, entered_at=entered_at, source=source,
                          expires_at=now + timedelta(seconds=self.settings.expiry_seconds), ticket=ticket,
                          name=name, reason=reason, call_id=call_id)
        callback, created = await asyncio.to_thread(self.store.create, new, now)
        if created:
            self.pending[callback.id] = callback
            self.events.callback_request(callback.id, queue, number, source.value, call_id or "")
        return callback, created

    async def merge_call_in(self, queue: str, number: str, call_id: str) -> datetime | None:
        """A live call from a number with a pending callback in ``queue``: the callback is
        closed as merged and its (older) entry time returned for the live call to take."""
        merged = await asyncio.to_thread(self.store.merge_into_call, queue, number, call_id, utcnow())
        if merged is None:
            return None
        self.pending.pop(merged.id, None)
        self.events.callback_closed(merged.id, queue, CallbackState.MERGED.value, f"live call {call_id}")
        return min(merged.entered_at, utcnow())

    # -- placing ------------------------------------------------------------------------
    def reserve(self, callback_id: str, agent: LiveAgent) -> bool:
        """In the routing pass (no await): the agent and the callback are taken at once, so
        the next pass offers neither again; :meth:`place` then runs as a task of its own."""
        callback = self.pending.pop(callback_id, None)
        if callback is None:
            return False
        self._claiming[callback_id] = callback
        agent.move(AgentState.RINGING, "callback reserved", call_id=f"callback:{callback_id}")
        agent.call_id = f"callback:{callback_id}"
        return True

    async def place(self, callback_id: str, agent: LiveAgent) -> None:
        if not await self._agent_held(callback_id, agent):
            return
        try:
            claim = await asyncio.to_thread(self.store.claim, callback_id, agent.extension, utcnow())
        finally:
            self._claiming.pop(callback_id, None)
        if claim is None:                  # another node has it, or it changed: reload
            self._refreshed = 0.0
            if agent.call_id == f"callback:{callback_id}":
                self.agents.done(agent, f"callback:{callback_id}", talked=False)
            return
        attempt = self._adopt_claim(claim, agent)
        self.events.callback_attempt(claim.callback.id, claim.callback.queue, agent.extension, attempt.id,
                                     claim.callback.number)
        if attempt.customer_first:
            await self._ring_customer(attempt)
            return
        await self._ring_agent(attempt, agent)

    async def _agent_held(self, callback_id: str, agent: LiveAgent) -> bool:
        """The agent's hold (several nodes on one database): refused, the callback is
        pending again, unclaimed, and the agent left to the node using it."""
        refused = await self.agents.hold(agent, f"callback:{callback_id}")
        if refused is None:
            return True
        callback = self._claiming.pop(callback_id, None)
        if callback is not None:
            self.pending[callback_id] = callback
        logger.info("callback %s: agent %s %s: pending again", callback_id, agent.extension, refused)
        if agent.call_id == f"callback:{callback_id}":
            self.agents.done(agent, f"callback:{callback_id}", talked=False)
        return False

    async def _ring_agent(self, attempt: LiveAttempt, agent: LiveAgent) -> None:
        attempt.move(AttemptState.AGENT_RINGING, f"ringing agent {agent.extension}")
        ok = await self.control.ring_agent(attempt.id, attempt.agent_channel, agent.endpoint,
                                           timeout=self.settings.ring_timeout,
                                           caller_id=f"Callback <{attempt.callback.number}>")
        if not ok:
            await self._agent_failed(attempt, "originate failed")

    def _customer_first(self, queue: str) -> bool:
        """The queue's own setting (admin web), else the configuration's list."""
        own = self.queues.get(queue).callback_customer_first
        return own if own is not None else queue in self.settings.customer_first

    def _adopt_claim(self, claim: Claim, agent: LiveAgent) -> LiveAttempt:
        attempt = LiveAttempt(claim.attempt_id, claim.callback, agent.extension,
                              customer_first=self._customer_first(claim.callback.queue))
        self.live[attempt.id] = attempt
        if agent.state is not AgentState.RINGING:
            agent.move(AgentState.RINGING, "callback offered", call_id=attempt.agent_channel)
        agent.call_id = attempt.agent_channel
        return attempt

    async def agent_answered(self, attempt_id: int) -> None:
        attempt = self.live.get(attempt_id)
        if attempt is None or attempt.state is not AttemptState.AGENT_RINGING:
            logger.warning("callback attempt %s: agent leg answered but nothing waits for it", attempt_id)
            await self.control.hangup(agent_channel_id(attempt_id))
            return
        attempt.move(AttemptState.WHISPER, f"agent {attempt.agent} answered")
        agent = self.roster.get(attempt.agent or "")
        if agent is not None:
            agent.move(AgentState.ON_CALL, "callback: whisper", call_id=attempt.agent_channel)
        if attempt.customer_first:           # the customer holds in the bridge: whisper outside it
            await self._whisper(attempt)
            if attempt.state is AttemptState.WHISPER:
                await self._bridge(attempt, attempt.agent_channel, "whisper over")
            return
        await self.control.join(attempt.id, attempt.agent_channel)
        await self._whisper(attempt)
        if attempt.state is AttemptState.WHISPER:
            await self._ring_customer(attempt)

    async def _whisper(self, attempt: LiveAttempt) -> None:
        agent = self.roster.get(attempt.agent or "")
        said = whisper_text(attempt.callback, utcnow(), self.messages.catalogue,
                            agent.language if agent is not None else None)
        sound = await self.messages.sound(said)
        playback_id = f"{attempt.agent_channel}-whisper"
        if await self.control.play(attempt.agent_channel, sound, playback_id):
            await self.playback_done(attempt.agent_channel, playback_id, WHISPER_DEADLINE)

    async def _ring_customer(self, attempt: LiveAttempt) -> None:
        await asyncio.to_thread(self.store.customer_dialled, attempt.id, utcnow())
        attempt.move(AttemptState.CUSTOMER_RINGING, f"dialling {attempt.callback.number}")
        ok = await self.control.ring_customer(attempt.id, attempt.customer_channel, attempt.callback.number,
                                              timeout=self.settings.customer_ring_seconds)
        if not ok:
            await self._customer_failed(attempt, AttemptOutcome.INVALID_NUMBER, "originate refused")

    async def customer_answered(self, attempt_id: int) -> None:
        attempt = self.live.get(attempt_id)
        if attempt is None or attempt.state is not AttemptState.CUSTOMER_RINGING:
            await self.control.hangup(customer_channel_id(attempt_id))
            return
        attempt.move(AttemptState.SCREENING, "customer answered")
        attempt.answered = time.monotonic()
        if not await self.control.screen(attempt.customer_channel):
            await self._customer_failed(attempt, AttemptOutcome.NO_ANSWER, "gone before screening")

    async def screened(self, attempt_id: int, amd_status: str, amd_cause: str = "") -> None:
        attempt = self.live.get(attempt_id)
        if attempt is None or attempt.state is not AttemptState.SCREENING:
            await self.control.hangup(customer_channel_id(attempt_id))
            return
        if amd_status == "MACHINE":
            await self._customer_failed(attempt, AttemptOutcome.VOICEMAIL, f"answering machine ({amd_cause})")
            return
        if attempt.customer_first:
            await self._hold_then_ring_agent(attempt, amd_status)
            return
        await self._bridge(attempt, attempt.customer_channel, f"AMD {amd_status or 'none'}")

    async def _hold_then_ring_agent(self, attempt: LiveAttempt, amd_status: str) -> None:
        """Customer first: a person answered; they hold in the bridge (told they can cancel)
        while the reserved agent is rung."""
        if not await self.control.join(attempt.id, attempt.customer_channel):
            await self._customer_failed(attempt, AttemptOutcome.NO_ANSWER, "gone before holding")
            return
        logger.info("callback %s attempt %d: AMD %s, the customer holds while agent %s is rung",
                    attempt.callback.id, attempt.id, amd_status or "none", attempt.agent)
        sound = await self.messages.sound_of("callback.hold", customer_language(attempt.callback),
                                             digit=self.settings.cancel_key)
        await self.control.play(attempt.customer_channel, sound, f"{attempt.customer_channel}-hold")
        agent = self.roster.get(attempt.agent or "")
        if agent is None:
            await self._agent_failed(attempt, f"agent {attempt.agent} no longer on the roster")
            return
        await self._ring_agent(attempt, agent)

    async def _bridge(self, attempt: LiveAttempt, channel_id: str, why: str) -> None:
        if not await self.control.join(attempt.id, channel_id):
            await self._customer_failed(attempt, AttemptOutcome.NO_ANSWER, "gone before bridging")
            return
        attempt.move(AttemptState.CONNECTED, f"{why}: customer bridged with agent {attempt.agent}")
        callback = attempt.callback
        self.events.callback_connect(callback.id, callback.queue, attempt.agent or "",
                                     (utcnow() - callback.entered_at).total_seconds(), attempt.agent_channel)

    async def dtmf(self, channel_id: str, digit: str) -> None:
        """The cancel key on the customer leg: the customer does not want the callback."""
        parsed = attempt_of_channel(channel_id)
        if parsed is None or parsed[1] != "customer" or digit != self.settings.cancel_key:
            return
        attempt = self.live.get(parsed[0])
        if attempt is not None and self._customer_on_line(attempt):
            await self._end(attempt, AttemptOutcome.CUSTOMER_CANCELLED, CallbackState.CANCELLED, None,
                            f"customer pressed {digit}")

    @staticmethod
    def _customer_on_line(attempt: LiveAttempt) -> bool:
        if attempt.state in (AttemptState.SCREENING, AttemptState.CONNECTED):
            return True
        return attempt.customer_first and attempt.state in (AttemptState.AGENT_RINGING, AttemptState.WHISPER)

    # -- legs ending --------------------------------------------------------------------
    async def leg_gone(self, channel_id: str, cause: int) -> None:
        parsed = attempt_of_channel(channel_id)
        attempt = self.live.get(parsed[0]) if parsed else None
        if attempt is None or attempt.state is AttemptState.ENDED:
            return
        leg = parsed[1]
        if attempt.state is AttemptState.CONNECTED:
            await self._end(attempt, AttemptOutcome.ANSWERED, CallbackState.DONE, None, f"{leg} hung up")
        elif leg == "customer" and attempt.customer_first and self._customer_on_line(attempt):
            await self._customer_failed(attempt, AttemptOutcome.NO_ANSWER,
                                        f"customer hung up while holding for the agent (cause {cause})")
        elif leg == "agent":      # declined, no answer, or hung up before the customer answered
            await self._agent_failed(attempt, f"agent leg ended while {attempt.state.value} (cause {cause})")
        else:
            await self._customer_failed(attempt, customer_outcome(cause), f"customer leg ended (cause {cause})")

    async def _agent_failed(self, attempt: LiveAttempt, why: str) -> None:
        """Not a customer attempt: the callback goes back to the line for the next agent."""
        agent = self.roster.get(attempt.agent or "")
        if attempt.state is AttemptState.AGENT_RINGING and agent is not None:
            self.agents.not_responding(agent, f"callback: {why}")
            attempt.agent = None      # moved on already (available or autopaused): not freed twice
        await self._retry_or_fail(attempt, AttemptOutcome.AGENT_NO_ANSWER, why)

    async def _customer_failed(self, attempt: LiveAttempt, outcome: AttemptOutcome, why: str) -> None:
        await self._retry_or_fail(attempt, outcome, why)

    async def _retry_or_fail(self, attempt: LiveAttempt, outcome: AttemptOutcome, why: str) -> None:
        callback = attempt.callback
        done = callback.attempts + (0 if outcome is AttemptOutcome.AGENT_NO_ANSWER else 1)
        now = time.monotonic()
        left = (callback.expires_at - utcnow()).total_seconds()
        decision = after_attempt(self.settings.retry, outcome, done, now, now + left)
        if decision.retry_at is None:
            await self._end(attempt, outcome, CallbackState.FAILED, None, f"{why}; {decision.why}")
            return
        not_before = utcnow() + timedelta(seconds=decision.retry_at - now)
        await self._end(attempt, outcome, CallbackState.PENDING, not_before, f"{why}; {decision.why}")

    async def _end(self, attempt: LiveAttempt, outcome: AttemptOutcome, state: CallbackState,
                   not_before: datetime | None, why: str) -> None:
        if attempt.state is AttemptState.ENDED:
            return
        talked = attempt.state is AttemptState.CONNECTED
        attempt.move(AttemptState.ENDED, why)
        self.live.pop(attempt.id, None)
        await self.control.release(attempt.id, attempt.agent_channel, attempt.customer_channel)
        await asyncio.to_thread(self.store.finish_attempt, attempt.id, outcome, utcnow(), next_state=state,
                                not_before=not_before, detail=why)
        callback = attempt.callback
        self.events.callback_result(callback.id, callback.queue, attempt.agent or "", attempt.id,
                                    outcome.value, state.value, why)
        if talked:
            self.events.callback_complete(callback.id, callback.queue, attempt.agent or "",
                                          time.monotonic() - attempt.answered)
        self._views.pop(callback.id, None)
        self._refreshed = 0.0
        agent = self.roster.get(attempt.agent or "")
        if agent is not None and agent.call_id == attempt.agent_channel:
            self.agents.done(agent, attempt.agent_channel, talked)

    # -- restart ------------------------------------------------------------------------
    async def recover(self) -> None:
        """After (re)connecting to ARI: adopt live legs of unfinished attempts, settle the rest."""
        live = await self.control.live_channels()
        leftovers = await asyncio.to_thread(self.store.unfinished_attempts, True)
        logger.info("callbacks: %d unfinished attempts of this instance to settle", len(leftovers))
        for row in leftovers:
            if row.id not in self.live:
                try:
                    await self._recover_attempt(row, live)
                except Exception:
                    logger.exception("callback attempt %d: recovery failed", row.id)
        await self.refresh(force=True)
        self.recovered.set()
        logger.info("callbacks: recovered; %d pending", len(self.pending))
        self.kick()

    async def _recover_attempt(self, row: CallbackAttempt, live: dict[str, dict]) -> None:
        callback = await asyncio.to_thread(self.store.get, row.callback_id)
        if row.id in self.live:          # placed by this run meanwhile: not a leftover
            return
        agent_up = agent_channel_id(row.id) in live
        customer = live.get(customer_channel_id(row.id))
        attempt = LiveAttempt(row.id, callback, row.agent,
                              customer_first=self._customer_first(callback.queue))
        self.live[row.id] = attempt
        if customer is not None and agent_up:
            self._reserve_recovered(attempt)
            attempt.state = (AttemptState.CUSTOMER_RINGING if customer.get("state") != "Up"
                             else AttemptState.SCREENING)
            logger.info("callback %s attempt %d: adopted after restart (%s)", callback.id, row.id,
                        attempt.state.value)
            if customer.get("state") == "Up":      # answered while we were away: bridge now
                await self.screened(row.id, "NOTSURE", "adopted after restart")
            return
        if row.customer_dialled_at is None:
            await self._end(attempt, AttemptOutcome.AGENT_NO_ANSWER, CallbackState.PENDING, None,
                            "serve restarted before the customer was dialled")
            return
        await self._retry_or_fail(attempt, AttemptOutcome.UNKNOWN_AFTER_CRASH,
                                  "serve restarted while the customer leg was up; the leg is gone")

    def _reserve_recovered(self, attempt: LiveAttempt) -> None:
        agent = self.roster.get(attempt.agent or "")
        if agent is not None and agent.state is AgentState.AVAILABLE:
            agent.move(AgentState.ON_CALL, "callback adopted after restart", call_id=attempt.agent_channel)
            agent.call_id = attempt.agent_channel

    def snapshot(self) -> dict:
        by_queue: dict[str, int] = {}
        for callback in self.pending.values():
            by_queue[callback.queue] = by_queue.get(callback.queue, 0) + 1
        return {"pending": len(self.pending), "pending_by_queue": by_queue,
                "attempts": {str(a.id): {"callback": a.callback.id, "state": a.state.value, "agent": a.agent}
                             for a in self.live.values()}}


def customer_outcome(cause: int) -> AttemptOutcome:
    """The outcome of a customer leg that ended before it was answered, from its cause."""
    if cause in BUSY_CAUSES:
        return AttemptOutcome.BUSY
    if cause in INVALID_CAUSES:
        return AttemptOutcome.INVALID_NUMBER
    return AttemptOutcome.NO_ANSWER


def customer_language(callback: Callback) -> str | None:
    """The language the caller was served in (the ticket kept with the callback), if any."""
    language = ((callback.ticket or {}).get("attributes") or {}).get("language")
    return language if isinstance(language, str) and language else None


def whisper_text(callback: Callback, now: datetime, messages: MessageCatalogue,
                 language: str | None) -> Said:
    """What the agent hears before the customer is dialled, in the agent's language."""
    minutes = max(1, round((now - callback.entered_at).total_seconds() / 60))
    who = callback.name or messages.say("callback.whisper_someone", language).text
    said = (messages.say("callback.whisper_reason", language, who=who, reason=callback.reason)
            if callback.reason else messages.say("callback.whisper", language, who=who))
    reference = (callback.context or {}).get("reference")
    if reference:
        said = said.then(messages.say("callback.whisper_reference", language,
                                      reference=" ".join(str(reference).replace("-", ""))))
    return said.then(messages.say("callback.whisper_a_minute", language) if minutes == 1
                     else messages.say("callback.whisper_minutes", language, n=minutes))
