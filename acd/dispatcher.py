"""The ACD dispatcher: applies the pure routing policy on every agent or queue change.

It owns the live calls waiting or talking and the agent roster, asks ``acd.routing`` (pure)
who gets which call, and drives the side effects through ``CallControl``.  Durable facts go
to the call record store at every state change, so a restarted serve can re-adopt calls.

Calls come in through one door, :meth:`Dispatcher.adopt` (IVR handoff, dialplan enqueue,
re-adoption after a restart).  No ARI request is awaited without a deadline, and none is
awaited inside a routing pass: an offer's originate runs as its own task, so one slow or
failing request stalls one call, never the others.  When a request fails the call is put
somewhere safe: back in line, the agent back to available (never left ringing).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from acd import routing
from acd.actions import Bridged, CallControl
from acd.agent_desk import AgentCommandError, AgentDesk
from acd.agents import AgentRoster, LiveAgent
from acd.autopause import DEFAULT_AFTER, AutoPause
from acd.announcements import Lines
from acd.clock import Clock, SystemClock
from acd.dispatch_callbacks import CallbackGlue
from acd.events import NullEventSink, QueueEventSink
from acd.hooks import CallHooks
from acd.log_later import LogLater
from acd.model import DEFAULT_AGE_BANDS, AgeBands, AgentState, ModelError, steps_from_list
from acd.queues import QueueBook, QueueSettings
from acd.state import CallEntry, CallOutcome, CallState, LiveCall
from acd.waiting import Speak, WaitingRoom, language_of
from callpilot.infra.asterisk.ari_helpers import agent_channel_id
from callpilot.infra.db.call_vocabulary import RoutingTicket
from callpilot.infra.db.records import RecordWriter
from callpilot.infra.messages import MessageCatalogue, builtin_messages

logger = logging.getLogger(__name__)

__all__ = ["AgentCommandError", "CallEntry", "Dispatcher"]

ACTION_DEADLINE = 8.0      # seconds any one ARI action may take before the call is made safe
PARK_RETRY_SECONDS = 1.0   # a park that failed (not 404) is tried once more after this
# Bridges Asterisk may fail for one call before the ACD stops offering it: a fault that
# persists would otherwise ring, answer and drop agent after agent until the caller gives up.
MAX_BRIDGE_FAILURES = 3
GiveUp = Callable[[str, str], Awaitable[None]]   # (call id, why): tell the caller, end the call
T = TypeVar("T")
LOGGED_IN_STATES = tuple(s for s in AgentState if s is not AgentState.LOGGED_OUT)
STAFFED_STATES = tuple(s for s in LOGGED_IN_STATES if s is not AgentState.PAUSED)


class Dispatcher(CallbackGlue):
    def __init__(self, control: CallControl, roster: AgentRoster, records: RecordWriter, *,
                 ring_timeout: int, wrapup_seconds: float, autopause_after: int = DEFAULT_AFTER,
                 queues: QueueBook | None = None,
                 events: QueueEventSink | None = None, speak: Speak | None = None,
                 fallback_queue: str = "general", bands: AgeBands = DEFAULT_AGE_BANDS,
                 clock: Clock | None = None, action_deadline: float = ACTION_DEADLINE,
                 hooks: CallHooks | None = None, give_up: GiveUp | None = None,
                 messages: MessageCatalogue | None = None):
        """``messages``: what the ACD says by itself, per language (the built-in catalogue
        when not given).  ``autopause_after``: offers an agent may miss in a row before it is
        paused (``acd.autopause``; 0 = never)."""
        self.control = control
        self.messages = messages or builtin_messages()
        self.hooks = hooks or CallHooks()     # opening hours, closed message, survey
        self.roster = roster
        self.records = records
        self.ring_timeout = ring_timeout
        self.wrapup_seconds = wrapup_seconds
        self.queues = queues or QueueBook()
        self.events = events or NullEventSink()
        self.fallback_queue = fallback_queue
        self.bands = bands
        self.clock = clock or SystemClock()
        self.action_deadline = action_deadline
        self.give_up = give_up             # None: end the call without a word
        self.autopause = AutoPause(autopause_after, self.events, self.clock)
        self.calls: dict[str, LiveCall] = {}
        self.routing = routing.LiveRouting(roster, bands=bands)
        self.lines = Lines()                      # waiting calls per queue, in line order
        self._talking: dict[str, str] = {}        # connected agent channel id -> call id
        self.desk = AgentDesk(roster, self.events, self.clock, self.kick)
        self.waiting = WaitingRoom(self.queues, speak, self._overflow, self._position, self._staffed,
                                   self.messages)
        self._ringing: dict[str, str] = {}        # agent channel id -> call id
        self._ring_started: dict[str, float] = {}
        self._last_ring: dict[str, float] = {}     # call id -> when its answered leg began ringing
        self._steps_of: dict[str, tuple[QueueSettings, tuple]] = {}   # queue -> (settings, steps)
        self._kick = asyncio.Event()
        self._log_later = LogLater()              # transitions on the way to an originate
        self._pass_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self.callbacks = None      # acd.callbacks.CallbackService, attached by the composition root
        self.holds = None          # acd.agent_holds.AgentHolds: several nodes on one database
        self.number_of = lambda caller_id: None   # caller ID -> E.164 (for merging callbacks)
        self.offer_key: Callable[[str], str] = lambda queue: ""   # queue -> its callback key

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="acd-dispatcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self.waiting.stop()
        for task in list(self._tasks):
            task.cancel()

    async def settle(self) -> None:
        """Wait for the side tasks started so far (originates, timers excepted)."""
        while pending := [t for t in self._tasks if not t.get_name().startswith("later-")]:
            await asyncio.gather(*pending, return_exceptions=True)

    def kick(self) -> None:
        self._kick.set()

    def _now(self) -> float:
        return self.clock.monotonic()

    async def _loop(self) -> None:
        while True:
            wakeup = self.routing.next_wakeup()
            timeout = None if wakeup is None else max(0.0, wakeup - self._now())
            try:
                await asyncio.wait_for(self._kick.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            try:
                await self._dispatch_once()
            except Exception:
                logger.exception("dispatch pass failed")

    async def _dispatch_once(self) -> None:
        """One routing pass.  Passes never overlap (the lock), and each offer re-checks that
        its call still waits and its agent is still free: never two offers for either; an
        offer not made is handed back to the router.  Routing sees only what changed since
        the last pass (``_routing_changed`` and the roster's change log).
        Nothing inside awaits Asterisk: the originates run as tasks of their own."""
        async with self._pass_lock:
            now = self._now()
            due = self._due_callbacks(now)
            virtual = {view_id: view for view_id, (_, view) in due.items()}
            for call_id, extension in self.routing.offers(self.calls, now, virtual):
                if call_id in due:
                    self._release_callback(due[call_id][0], call_id, extension)
                    continue
                call, agent = self.calls.get(call_id), self.roster.get(extension)
                if (call is not None and call.state is CallState.QUEUED
                        and agent is not None and agent.routable):
                    self._offer(call, agent)
                else:
                    logger.info("offer of call %s to agent %s no longer holds: handed back",
                                call_id, extension)
                    self.routing.handed_back(call_id, extension)
                    self.kick()
            if len(self._log_later):    # after the originates' first steps (scheduled before)
                asyncio.get_running_loop().call_soon(self._log_later.flush)

    def _routing_changed(self, call: LiveCall) -> None:
        """The call entered or left QUEUED, or its queue or ticket changed."""
        self.routing.call_changed(call.id)

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        if asyncio.iscoroutine(coro):   # the ring's task: no ensure_future frames on its path (D38)
            task = asyncio.get_running_loop().create_task(coro, name=name)
        else:
            task = asyncio.ensure_future(coro)
            task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("task %s failed", task.get_name(), exc_info=task.exception())

    async def _act(self, what: str, call_id: str, action: Awaitable[T], failed: T) -> T:
        """One ARI action with a deadline; any error or timeout is logged and gives ``failed``.
        (``asyncio.timeout``, not ``wait_for``: no extra task, so no extra loop turn, on the
        path to the agent's phone.)"""
        try:
            async with asyncio.timeout(self.action_deadline):
                return await action
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001  (an ARI fault must not escape into the event dispatch)
            logger.warning("call %s: %s failed: %r", call_id, what, exc)
            return failed

    # -- taking a call ------------------------------------------------------------------
    async def adopt(self, entry: CallEntry) -> LiveCall:
        """Take a call: into its ticket's queue, or, re-adopted while connected, as it is."""
        call = LiveCall(id=entry.call_id, caller_id=entry.caller_id, did=entry.did,
                        attributes={**entry.attributes, **entry.ticket.attributes},
                        ticket=entry.ticket)
        if entry.agent_channel:
            self._adopt_connected(call, entry)
        else:
            await self._enqueue(call, entry.ticket, entry.enqueued_at, entry.readopted)
        return call

    def _adopt_connected(self, call: LiveCall, entry: CallEntry) -> None:
        """Found talking after a restart: restored as it is (not a transition)."""
        call.state, call.queue, call.agent = CallState.CONNECTED, entry.ticket.queue, entry.agent
        call.agent_channel, call.answered_mono = entry.agent_channel, self._now()
        self._talking[entry.agent_channel or ""] = call.id
        logger.info("call %s queue=%s agent=%s: re-adopted connected", call.id, call.queue, call.agent)
        self.calls[call.id] = call
        agent = self.roster.get(entry.agent or "")
        if agent is not None and agent.state is AgentState.AVAILABLE:
            agent.move(AgentState.ON_CALL, "re-adopted connected call", call_id=call.id)
            agent.call_id = call.id

    async def _enqueue(self, call: LiveCall, ticket: RoutingTicket, enqueued_at: datetime | None,
                       readopted: bool) -> None:
        if not readopted:           # a re-adopted call was admitted before
            ticket = await self._open_queue(call, ticket)
            if ticket is None:
                return
        settings = self.queues.get(ticket.queue)
        if not settings.join_empty and not self._logged_in(ticket.queue) and settings.overflow_queue:
            logger.info("call %s: queue %s has no agent logged in: joining %s", call.id,
                        ticket.queue, settings.overflow_queue)
            ticket = ticket.to_queue(settings.overflow_queue)
        call.move(CallState.QUEUED, "re-adopted" if readopted else f"enqueue {ticket.queue}",
                  log=self._log_later)       # written after the originate (_enter's pass)
        await self._enter(call, ticket, enqueued_at, report=not readopted)

    def _steps(self, call: LiveCall, ticket: RoutingTicket, settings: QueueSettings) -> tuple:
        if ticket.steps is None:
            return self._queue_steps(settings)
        try:
            return steps_from_list(list(ticket.steps))
        except ModelError as exc:
            logger.error("call %s: ticket steps refused (%s): queue %s steps apply", call.id,
                         exc, settings.name)
            return self._queue_steps(settings)

    def _queue_steps(self, settings: QueueSettings) -> tuple:
        """The queue's steps, built once per settings object (steps are frozen: shared by
        the calls of the queue; a reload brings new settings, so new steps)."""
        held = self._steps_of.get(settings.name)
        if held is None or held[0] is not settings:
            held = self._steps_of[settings.name] = (settings, tuple(settings.routing_steps()))
        return held[1]

    async def _enter(self, call: LiveCall, ticket: RoutingTicket, enqueued_at: datetime | None,
                     report: bool = True) -> None:
        """Into ``ticket``'s queue.  The originate comes first: the call joins routing and a
        pass runs before anything that can come after it (the queue event, the position,
        the announcements, a pending callback's older place, the holding bridge and music:
        ``_after_offer``).  D20 has the figures."""
        settings = self.queues.get(ticket.queue)
        merge = report and enqueued_at is None
        if merge and self._callback_known(call, ticket.queue):
            # merged before routing: its callback must not go to an agent in this pass
            enqueued_at, merge = await self._merged_entry(call, ticket.queue), False
        call.ticket, call.queue, call.priority = ticket, ticket.queue, ticket.priority
        call.skill, call.skills = settings.queue_skill, dict(ticket.skills)
        call.steps = self._steps(call, ticket, settings)
        utcnow = self.clock.utcnow()
        self._set_entry(call, enqueued_at or utcnow, utcnow)
        self.calls[call.id] = call
        self.records.post(call.id, state=CallState.QUEUED, queue=call.queue,
                          enqueued_at=call.enqueued_at, ticket=ticket.to_json())
        # agent_answered waits for the park (never longer than the action deadline)
        call.parked = asyncio.get_running_loop().create_future()
        await self._dispatch_once()
        await asyncio.sleep(0)     # the offer's originate goes out before anything else
        await self._after_offer(call, settings, merge=merge, report=report)

    def _set_entry(self, call: LiveCall, entered: datetime, utcnow: datetime | None = None) -> None:
        """The call's entry time (its place in line and its step clock); ``utcnow``: the
        clock's time now, when the caller has just read it."""
        call.enqueued_at = entered
        delay = 0.0 if entered is utcnow else ((utcnow or self.clock.utcnow()) - entered).total_seconds()
        call.enqueued_mono = self._now() - delay
        call.view = None
        self.lines.join(call)
        self._routing_changed(call)

    async def _after_offer(self, call: LiveCall, settings: QueueSettings, *, merge: bool,
                           report: bool) -> None:
        """What a queue entry does once its offer (if any) has gone out."""
        call.orig_position = self._position(call)
        if report:  # a re-adopted call already has its ENTERQUEUE
            self.events.enter_queue(call.id, call.queue or "", call.caller_id, call.orig_position)
        self.waiting.watch(call)
        self.kick()                # the loop re-plans its next wake-up (step expiries) with this call
        await self._park(call, settings)
        if merge:
            await self._merge_late(call, call.queue or "")

    async def _park(self, call: LiveCall, settings: QueueSettings) -> None:
        """Holding bridge and music.  Gone (404): the caller left.  A fault: the caller keeps
        its place in line without music, and is bridged to the agent all the same."""
        parked = await self._act("park", call.id, self.control.park(call.id, call.queue or "",
                                                                     settings.moh_class), None)
        if call.parked is not None and not call.parked.done():
            call.parked.set_result(parked)
        if parked is False:
            await self.caller_gone(call.id)
        elif parked is None:                      # a fault: once more in a moment, for the music
            self._later(PARK_RETRY_SECONDS, lambda: self._park_again(call, settings),
                        f"later-park-{call.id}")

    async def _park_again(self, call: LiveCall, settings: QueueSettings) -> None:
        if self.calls.get(call.id) is not call or call.state is not CallState.QUEUED:
            return
        parked = await self._act("park (again)", call.id,
                                 self.control.park(call.id, call.queue or "", settings.moh_class), None)
        if parked is False:
            await self.caller_gone(call.id)

    async def _open_queue(self, call: LiveCall, ticket: RoutingTicket) -> RoutingTicket | None:
        """Opening hours: the ticket if its queue is open, aimed at the queue's closed queue if
        it has one, else None (the caller hears the closed message; outcome ``closed``)."""
        settings = self.queues.get(ticket.queue)
        if not settings.calendar or self.hooks.queue_open(settings.calendar):
            return ticket
        if settings.closed_queue and settings.closed_queue != ticket.queue:
            logger.info("call %s: queue %s closed (calendar %s): joining %s", call.id, ticket.queue,
                        settings.calendar, settings.closed_queue)
            return ticket.to_queue(settings.closed_queue)
        logger.info("call %s: queue %s closed (calendar %s)", call.id, ticket.queue, settings.calendar)
        call.move(CallState.ENDED, f"queue {ticket.queue} closed")
        await self.records.update(call.id, state=CallState.ENDED, outcome=CallOutcome.CLOSED,
                                  queue=ticket.queue, ended_at=self.clock.utcnow(),
                                  detail=f"queue {ticket.queue} closed")
        if self.hooks.closed is not None:
            language = language_of(call)
            self.hooks.closed(call.id, settings.closed_announcement(language)
                              or self.messages.say("queue.closed", language))
        else:
            await self._act("hangup", call.id, self.control.hangup(call.id), None)
        return None

    def _position(self, call: LiveCall) -> int:
        return self.lines.position(call) + self.callbacks_ahead(call)

    def _logged_in(self, queue: str) -> int:
        return self.roster.count(queue, *LOGGED_IN_STATES)

    def _staffed(self, queue: str) -> int:
        return self.roster.count(queue, *STAFFED_STATES)

    async def _overflow(self, call: LiveCall, target: str | None) -> None:
        """Max wait reached: leave for the overflow queue (keeping the place in line)."""
        if call.state is not CallState.QUEUED or call.id not in self.calls:
            return
        waited = call.waited(self._now())
        if not target or target == call.queue:
            logger.info("call %s waited %.0fs in %s; no overflow target", call.id, waited, call.queue)
            return
        self.events.exit_with_timeout(call.id, call.queue or "", self._position(call), waited, target)
        logger.info("call %s: max wait in %s, overflow to %s", call.id, call.queue, target)
        await self._act("unpark", call.id, self.control.unpark(call.id, call.queue or ""), None)
        ticket = call.ticket or RoutingTicket(call.queue or target, call.priority, call.skills)
        await self._enter(call, ticket.to_queue(target), call.enqueued_at)

    # -- offering to an agent -----------------------------------------------------------
    def _offer(self, call: LiveCall, agent: LiveAgent) -> None:
        """Both sides move to RINGING now (no second offer to either); the originate runs
        as a task of its own."""
        call.attempts += 1
        channel_id = agent_channel_id(call.id, call.attempts)
        agent.move(AgentState.RINGING, "offered", call_id=call.id, log=self._log_later)
        agent.call_id = call.id
        call.agent, call.agent_channel = agent.extension, channel_id
        call.move(CallState.RINGING, f"ring {agent.extension}", log=self._log_later)
        now = self._now()
        self._ringing[channel_id] = call.id
        self._ring_started[channel_id] = now
        self._spawn(self._ring(call, agent, channel_id), f"ring-{channel_id}")
        # after the originate's first step, in order with the pass's other posts (D36)
        self._log_later.then(self.records.post, call.id, state=CallState.RINGING, agent=agent.extension)
        if self.hooks.offered is not None:
            self._log_later.then(self.hooks.offered, call, agent, now)

    async def _ring(self, call: LiveCall, agent: LiveAgent, channel_id: str) -> None:
        if self.holds is not None and not await self._held(call, agent, channel_id):
            return
        ok = await self._act(f"originate to {agent.endpoint}", call.id,
                             self.control.ring(call.id, agent.endpoint, channel_id,
                                               timeout=self.ring_timeout, caller_id=call.caller_id),
                             False)
        if ok and self.hooks.originated is not None:
            self.hooks.originated(call, self._now())
        if not ok and channel_id in self._ringing:
            await self._act("cancel ring", call.id, self.control.cancel_ring(channel_id), None)
            await self._ring_failed(channel_id, cause=0)
        elif ok:
            await self._prepare_bridge(call)

    async def _held(self, call: LiveCall, agent: LiveAgent, channel_id: str) -> bool:
        """Several nodes: the agent's hold first (``acd.agent_holds``).  Refused: the caller
        is back in line at its place and the agent, not blamed, is left to the node using
        it.  False too when the offer ended while the hold was taken (nothing to ring)."""
        refused = await self.hold(agent, call.id)
        if channel_id not in self._ringing:          # the caller left meanwhile
            return False
        if refused is None:
            return True
        self._ringing.pop(channel_id, None)
        self._ring_started.pop(channel_id, None)
        call.agent, call.agent_channel = None, None
        call.move(CallState.QUEUED, f"agent {agent.extension} {refused}: back in line")
        self._routing_changed(call)
        self.records.post(call.id, state=CallState.QUEUED, agent=None)
        self._release_agent(agent, call, refused)
        self.kick()
        return False

    async def hold(self, agent: LiveAgent, call_id: str) -> str | None:
        """Take ``agent``'s hold for ``call_id`` (live call or callback): None when held
        (or when this node shares its agents with no other), else why not."""
        return None if self.holds is None else await self.holds.take(agent, call_id)

    async def _prepare_bridge(self, call: LiveCall) -> None:
        """While the agent's phone rings: the call's mixing bridge, ready for the answer."""
        await self._act("prepare bridge", call.id, self.control.prepare_bridge(call.id), None)
        if call.state is CallState.ENDED:        # the caller left meanwhile: no bridge left behind
            await self._act("release", call.id, self.control.release(call.id), None)

    def _ring_start_of(self, call: LiveCall) -> float:
        return self._last_ring.pop(call.id, self._now())

    async def agent_answered(self, channel_id: str, call_id: str) -> None:
        self._ringing.pop(channel_id, None)
        started = self._ring_started.pop(channel_id, None)
        if started is not None:
            self._last_ring[call_id] = started
        call = self._offered(call_id, channel_id)
        if call is None:
            logger.warning("agent leg %s answered for call %s that no longer waits", channel_id, call_id)
            await self._act("hang up stray agent leg", call_id, self.control.hangup(channel_id), None)
            return
        await self._parked(call)      # never move the caller before the holding bridge has it
        bridged = await self._act("connect", call.id,
                                  self.control.connect(call.id, channel_id, call.queue or ""),
                                  Bridged.FAILED)
        if self._offered(call_id, channel_id) is None:       # the caller left meanwhile
            await self._act("hang up agent leg", call_id, self.control.hangup(channel_id), None)
        elif bridged is Bridged.CONNECTED:
            self._connected(call, channel_id)
        elif bridged is Bridged.CALLER_GONE:
            await self._act("hang up agent leg", call_id, self.control.hangup(channel_id), None)
            await self.caller_gone(call.id)
        else:
            await self._connect_failed(call, channel_id, agent_gone=bridged is Bridged.AGENT_GONE)

    def _offered(self, call_id: str, channel_id: str) -> LiveCall | None:
        call = self.calls.get(call_id)
        if call is None or call.state is not CallState.RINGING or call.agent_channel != channel_id:
            return None
        return call

    async def _parked(self, call: LiveCall) -> None:
        if call.parked is None or call.parked.done():
            return
        try:
            async with asyncio.timeout(self.action_deadline):
                await asyncio.shield(call.parked)
        except TimeoutError:
            logger.warning("call %s: park still pending after %.0fs: connecting anyway", call.id,
                           self.action_deadline)

    def _connected(self, call: LiveCall, channel_id: str) -> None:
        call.move(CallState.CONNECTED, f"agent {call.agent} answered")
        now = self._now()
        call.answered_mono = now
        self.waiting.forget(call.id)
        self.lines.leave(call.id)
        self._talking[channel_id] = call.id
        self.events.connect(call.id, call.queue or "", call.agent or "", call.waited(now),
                            now - self._ring_start_of(call), agent_channel=channel_id)
        agent = self.roster.get(call.agent or "")
        if agent is not None:
            agent.move(AgentState.ON_CALL, "answered", call_id=call.id)
            self.kick()     # routing sees the agent's move now, not in the next caller's pass (D36)
        self.records.post(call.id, state=CallState.CONNECTED, agent=call.agent,
                          answered_at=self.clock.utcnow())

    async def _connect_failed(self, call: LiveCall, channel_id: str, *, agent_gone: bool) -> None:
        """No bridge: the agent is released (not blamed), the caller goes back in line at its
        place (its original entry time: the head of the line if it is the oldest) and back to
        the music.  ``agent_gone``: the agent's leg vanished between its answer and the bridge
        (the agent hung up at once): not Asterisk's fault, so not counted against the call."""
        await self._act("hang up agent leg", call.id, self.control.hangup(channel_id), None)
        agent = self.roster.get(call.agent or "")
        why = "hung up before the bridge" if agent_gone else "bridge failed"
        call.agent, call.agent_channel = None, None
        if not agent_gone:
            call.bridge_failures += 1
        if call.bridge_failures >= MAX_BRIDGE_FAILURES:
            self._release_agent(agent, call, why)
            await self._give_up(call, f"Asterisk failed the bridge {call.bridge_failures} times")
            return
        call.move(CallState.QUEUED, f"{why}: back in line")
        self._routing_changed(call)
        self.records.post(call.id, state=CallState.QUEUED, agent=None)
        call.parked = asyncio.get_running_loop().create_future()   # the next answer waits for this park
        await self._dispatch_once()     # back in the router before the agent is free again: a
        if agent_gone:                  # pass applies agents before entering calls, so the
            self._missed(agent, call, why)   # freed agent would not see this (older) caller
        else:
            self._release_agent(agent, call, why)
        self.kick()
        await self._park(call, self.queues.get(call.queue or ""))

    def _release_agent(self, agent: LiveAgent | None, call: LiveCall, why: str) -> None:
        """The agent rung for ``call`` is available again (not blamed)."""
        if _rung_for(agent, call):
            agent.move(AgentState.AVAILABLE, why, call_id=call.id, at=self._now())

    def _missed(self, agent: LiveAgent | None, call: LiveCall, why: str) -> None:
        """The agent rung for ``call`` missed it: available again, or paused after too many
        in a row (``acd.autopause``)."""
        if _rung_for(agent, call):
            self.autopause.missed(agent, call.id, why)

    async def _give_up(self, call: LiveCall, why: str) -> None:
        """A call no agent can be given: offered no more (it stays out of the line while it
        is told), then ended as ``system``."""
        logger.error("call %s: %s: giving up", call.id, why)
        self.waiting.forget(call.id)
        if self.give_up is not None:
            await self.give_up(call.id, why)
        if call.id in self.calls:
            await self._finish(call, CallOutcome.SYSTEM, why)

    async def agent_leg_gone(self, channel_id: str, cause: int = 0, *, hung_up: bool = False) -> None:
        """``hung_up``: the leg is known to be gone (hung up or destroyed), not merely out of
        Stasis: the call's release does not ask Asterisk to hang it up again."""
        if channel_id in self._ringing:
            await self._ring_failed(channel_id, cause)
            return
        call = self.calls.get(self._talking.get(channel_id, ""))
        if call is not None and call.state is CallState.CONNECTED and call.agent_channel == channel_id:
            await self._finish(call, CallOutcome.ANSWERED, "agent hung up",
                               gone=(channel_id,) if hung_up else ())

    async def _ring_failed(self, channel_id: str, cause: int) -> None:
        call_id = self._ringing.pop(channel_id, None)
        started = self._ring_started.pop(channel_id, self._now())
        call = self.calls.get(call_id) if call_id else None
        if call is None or call.agent_channel != channel_id:
            return
        agent = self.roster.get(call.agent or "")
        rang = self._now() - started
        self.events.ring_no_answer(call.id, call.queue or "", call.agent or "", int(rang * 1000))
        call.agent, call.agent_channel = None, None
        call.move(CallState.QUEUED, f"ring failed cause={cause}")
        self._routing_changed(call)
        self.records.post(call.id, state=CallState.QUEUED, agent=None)
        # no answer, rejected, unreachable: the caller is back in the router before the agent
        # can be free again, so another free agent takes it first (see _connect_failed)
        await self._dispatch_once()
        self._missed(agent, call, f"not answered (cause={cause}, rang {rang:.1f}s)")
        self.kick()

    # -- leaving ------------------------------------------------------------------------
    async def caller_gone(self, call_id: str, *, by_system: bool = False,
                          cause: int | None = None, hung_up: bool = False) -> None:
        """The caller's channel left.  ``by_system``: Asterisk hung it up (shutdown, an
        operator's request), not the caller: recorded ``system``, never an abandon.
        ``hung_up``: the channel is known to be gone, not merely out of Stasis (as
        ``agent_leg_gone``)."""
        call = self.calls.get(call_id)
        if call is None:
            return
        gone = (call_id,) if hung_up else ()
        if call.state is CallState.CONNECTED:
            why = "ended by Asterisk" if by_system else "caller hung up"
            await self._finish(call, CallOutcome.ANSWERED, why, cause, gone)
        elif by_system:
            await self._finish(call, CallOutcome.SYSTEM,
                               f"ended by Asterisk while {call.state.value} (cause {cause})", cause, gone)
        else:
            self.events.abandon(call.id, call.queue or "", self._position(call), call.orig_position,
                                call.waited(self._now()))
            await self._finish(call, CallOutcome.ABANDONED, f"caller hung up while {call.state.value}",
                               cause, gone)

    async def channel_lost(self, call_id: str, why: str) -> None:
        """The caller's channel vanished while we were not listening (ARI down, Asterisk
        restarted): not the caller's doing, so not an abandon."""
        call = self.calls.get(call_id)
        if call is not None:
            await self._finish(call, CallOutcome.LOST, why, gone=(call_id,))

    async def end(self, call_id: str, outcome: CallOutcome, why: str) -> bool:
        """End a call the dispatcher holds (hang up, free the agent, record); False if it
        holds no such call."""
        call = self.calls.get(call_id)
        if call is None:
            return False
        await self._finish(call, outcome, why)
        return True

    def _report_completion(self, call: LiveCall, why: str) -> None:
        now = self._now()
        talk = now - call.answered_mono
        self.waiting.record_handle_time(call.queue or "", talk)
        self.events.complete(call.id, call.queue or "", call.agent or "", call.waited(now), talk,
                             "agent" if why.startswith("agent") else "caller")

    async def _finish(self, call: LiveCall, outcome: CallOutcome, why: str,
                      cause: int | None = None, gone: tuple[str, ...] = ()) -> None:
        """``gone``: the call's channels known to be gone already (D39)."""
        self.waiting.forget(call.id)
        self.lines.leave(call.id)
        self._last_ring.pop(call.id, None)
        if call.state is CallState.CONNECTED:
            self._report_completion(call, why)
        self.calls.pop(call.id, None)
        previous = call.state
        call.move(CallState.ENDED, why)
        self._routing_changed(call)
        if call.agent_channel:
            self._ringing.pop(call.agent_channel, None)
            self._talking.pop(call.agent_channel, None)
        self._free_agent(call, previous)
        self.kick()
        survey = self._survey_flow(call, previous, why)
        legs = legs_to_hang_up(call, caller_stays=bool(survey), gone=gone)
        await self._act("release", call.id, self.control.release(call.id, *legs), None)
        await self.records.update(call.id, state=CallState.ENDED, outcome=outcome,
                                  ended_at=self.clock.utcnow(), detail=why, hangup_cause=cause)
        if survey:
            self.hooks.survey(call, survey)

    def _survey_flow(self, call: LiveCall, previous: CallState, why: str) -> str | None:
        """The queue's survey flow when the agent hung up first on a connected call."""
        if self.hooks.survey is None or previous is not CallState.CONNECTED:
            return None
        if not why.startswith("agent"):
            return None
        return self.queues.get(call.queue or "").survey_flow

    def _free_agent(self, call: LiveCall, previous: CallState) -> None:
        agent = self.roster.get(call.agent) if call.agent else None
        if agent is None or agent.call_id not in (call.id, None):
            return
        wrapup = self.wrapup_seconds if agent.wrapup_seconds is None else agent.wrapup_seconds
        if previous is CallState.CONNECTED and wrapup > 0:
            agent.move(AgentState.WRAP_UP, "call ended", call_id=call.id)
            self._later(wrapup, lambda: self._end_wrapup(agent, call.id), f"later-wrapup-{call.id}")
        else:
            why = "call ended, no wrap-up" if previous is CallState.CONNECTED else "call ended before answer"
            agent.move(AgentState.AVAILABLE, why, call_id=call.id, at=self._now())

    async def _end_wrapup(self, agent: LiveAgent, call_id: str) -> None:
        if agent.state is AgentState.WRAP_UP and agent.call_id == call_id:
            agent.move(AgentState.AVAILABLE, "wrap-up over", call_id=call_id, at=self._now())
            self.kick()

    def _later(self, delay: float, make_coro, name: str) -> None:
        async def run():
            await asyncio.sleep(delay)
            await make_coro()
        self._spawn(run(), name)

    # -- agents -------------------------------------------------------------------------
    def adopt_roster(self, agents: list[LiveAgent]) -> None:
        self.desk.adopt_roster(agents)

    def refresh_roster(self, agents: list[LiveAgent]) -> list[str]:
        """Agents re-read from the database (see ``AgentDesk.refresh_roster``)."""
        return self.desk.refresh_roster(agents)

    def device_state_changed(self, device: str, state: str) -> None:
        if self.roster.set_device_state(device, state) is not None:
            self.kick()

    def agent_command(self, extension: str, action: str, reason: str = "") -> LiveAgent:
        """login | logout | pause | unpause (see acd.agent_desk); AgentCommandError if refused."""
        return self.desk.command(extension, action, reason)

    # -- status -------------------------------------------------------------------------
    def waiting_calls(self) -> list[dict]:
        now = self._now()
        places = self.lines.positions()
        if self.callbacks is not None and self.callbacks.pending:
            places = {call_id: place + self.callbacks_ahead(self.calls[call_id])
                      for call_id, place in places.items()}
        return [{"id": c.id, "queue": c.queue, "state": c.state.value, "caller_id": c.caller_id,
                 "priority": c.priority, "skills": dict(c.skills), "position": places[c.id], "waited": round(c.waited(now), 1),
                 "announcements": self.waiting.announced.get(c.id, 0)}
                for c in self.calls.values() if c.id in places]

    def waiting_by_queue(self) -> dict[str, dict[str, float]]:
        """Per queue: how many calls wait and the longest wait (s), without a walk of the lines'
        positions (what another node's admin web shows: ``node_status``)."""
        now, by_queue = self._now(), {}
        for call in self.calls.values():
            if call.state is CallState.QUEUED:
                queue = by_queue.setdefault(call.queue or "?", {"count": 0, "longest": 0.0})
                queue["count"] += 1
                queue["longest"] = max(queue["longest"], round(call.waited(now), 1))
        return by_queue

    def call_states(self) -> dict[str, int]:
        """How many of the ACD's calls are in each state (queued, ringing, connected)."""
        counts: dict[str, int] = {}
        for call in self.calls.values():
            counts[call.state.value] = counts.get(call.state.value, 0) + 1
        return counts

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Per queue: waiting calls (a counter) and routable agents (a walk of the agents,
        never of the calls)."""
        queues: dict[str, dict[str, int]] = {}
        for agent in self.roster.agents.values():
            for q in agent.queues:
                entry = queues.setdefault(q, {"waiting": 0, "agents_available": 0})
                entry["agents_available"] += int(agent.routable)
        for queue, waiting in self.lines.lengths().items():
            if queue:
                queues.setdefault(queue, {"waiting": 0, "agents_available": 0})["waiting"] = waiting
        return queues


def _rung_for(agent: LiveAgent | None, call: LiveCall) -> bool:
    """The agent is still the one ringing for ``call`` (not moved on by anything else)."""
    return agent is not None and agent.state is AgentState.RINGING and agent.call_id == call.id


def legs_to_hang_up(call: LiveCall, *, caller_stays: bool, gone: tuple[str, ...]) -> tuple[str, ...]:
    """The channels a finished call's release asks Asterisk to hang up: the caller (unless it
    stays for a survey) and the agent's leg, but not one serve has seen go (its StasisEnd
    after a hang-up request, or its ChannelDestroyed; a channel missing after a resync): that
    request could only answer 404, on every normal call (D39)."""
    legs = () if caller_stays else (call.id,)
    if call.agent_channel:
        legs += (call.agent_channel,)
    return tuple(leg for leg in legs if leg not in gone)
