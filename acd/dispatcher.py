"""The ACD dispatcher: applies the pure routing policy on every agent or queue change.

It owns the live calls waiting or talking and the agent roster, asks ``acd.routing`` (pure)
who gets which call, and drives the side effects through ``CallControl``.  Durable facts go
to the call record store at every state change, so a restarted serve can re-adopt calls.
"""
from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime

from acd import routing
from acd.policy.callbacks import assign_with_callbacks
from acd.actions import CallControl
from acd.announcements import position_of, positions
from acd.agents import AgentRoster, LiveAgent
from acd.events import NullEventSink, QueueEventSink
from acd.model import DEFAULT_AGE_BANDS, AgeBands, AgentState, steps_to_list
from acd.queues import QueueBook
from acd.state import CallState, LiveCall, Outcome
from acd.waiting import Speak, WaitingRoom
from callpilot.infra.asterisk.ari_helpers import agent_channel_id
from callpilot.infra.db.callbacks import CallbackSource
from callpilot.infra.db.records import RecordWriter, utcnow

logger = logging.getLogger(__name__)

CALLBACK_TICK = 2.0     # seconds between passes while callbacks are attached


class AgentCommandError(ValueError):
    """An agent command that cannot apply now (the message says why)."""


class Dispatcher:
    def __init__(self, control: CallControl, roster: AgentRoster, records: RecordWriter, *,
                 ring_timeout: int, wrapup_seconds: float, queues: QueueBook | None = None,
                 events: QueueEventSink | None = None, speak: Speak | None = None,
                 fallback_queue: str = "general", bands: AgeBands = DEFAULT_AGE_BANDS):
        self.control = control
        self.roster = roster
        self.records = records
        self.ring_timeout = ring_timeout
        self.wrapup_seconds = wrapup_seconds
        self.queues = queues or QueueBook()
        self.events = events or NullEventSink()
        self.fallback_queue = fallback_queue
        self.bands = bands
        self.calls: dict[str, LiveCall] = {}
        self.waiting = WaitingRoom(self.queues, speak, self._overflow,
                                   lambda: list(self.calls.values()), self._staffed)
        self._ringing: dict[str, str] = {}        # agent channel id -> call id
        self._ring_started: dict[str, float] = {}
        self._last_ring: dict[str, float] = {}     # call id -> when its answered leg began ringing
        self._kick = asyncio.Event()
        self._pass_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None
        self._timers: set[asyncio.Task] = set()
        self.callbacks = None      # acd.callbacks.CallbackService, attached by the composition root
        self.offer_key = ""
        self.number_of = lambda caller_id: None   # caller ID -> E.164 (for merging callbacks)

    def attach_callbacks(self, service, number_of) -> None:
        """Pending callbacks join the line; ``number_of`` normalises caller IDs to E.164
        (None when not a callable number)."""
        self.callbacks, self.number_of = service, number_of
        self.waiting.ahead = self.callbacks_ahead

    # -- lifecycle ----------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="acd-dispatcher")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
        self.waiting.stop()
        for timer in list(self._timers):
            timer.cancel()

    def kick(self) -> None:
        self._kick.set()

    async def _loop(self) -> None:
        while True:
            wakeup = routing.next_wakeup(self._waiting(), self.roster.agents.values(), time.monotonic(),
                                         bands=self.bands)
            timeout = None if wakeup is None else max(0.0, wakeup - time.monotonic())
            if self.callbacks is not None:   # callbacks come due (retry, window) and arrive from the web
                timeout = min(timeout or CALLBACK_TICK, CALLBACK_TICK)
            try:
                await asyncio.wait_for(self._kick.wait(), timeout)
            except asyncio.TimeoutError:
                pass
            self._kick.clear()
            try:
                await self._dispatch_once()
            except Exception:
                logger.exception("dispatch pass failed")

    def _waiting(self) -> list[LiveCall]:
        return [c for c in self.calls.values() if c.state is CallState.QUEUED]

    async def _dispatch_once(self) -> None:
        """One routing pass.  Passes never overlap (the lock), and each offer re-checks that
        its call still waits and its agent is still free: never two offers for either."""
        async with self._pass_lock:
            pairs, released = await self._match()
            for call_id, extension in pairs:
                call, agent = self.calls.get(call_id), self.roster.agents[extension]
                if call is not None and call.state is CallState.QUEUED and agent.routable:
                    await self._offer(call, agent)
            for callback_id, extension in released:
                agent = self.roster.agents[extension]
                if agent.routable:
                    await self.callbacks.place(callback_id, agent)

    async def _match(self) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """One matching of live calls and due callbacks (each callback ordered by its
        original entry time among the live calls): (call pairs, callback pairs)."""
        now = time.monotonic()
        if self.callbacks is None:
            return routing.assign(self._waiting(), self.roster.agents.values(), now, bands=self.bands), []
        await self.callbacks.refresh()
        live = [routing.call_view(call) for call in self._waiting()]
        agents = [routing.agent_view(agent) for agent in self.roster.agents.values()]
        pending = self.callbacks.pending_views(now, live_calls=self.calls.keys())
        return assign_with_callbacks(live, pending, agents, now,
                                     dialling_numbers=self.callbacks.dialling_numbers(), bands=self.bands)

    # -- entering the queue -------------------------------------------------------------
    async def enqueue(self, call: LiveCall, queue: str, *, priority: int = 0,
                      skills: dict | None = None, steps: tuple | None = None,
                      enqueued_at: datetime | None = None, readopted: bool = False) -> None:
        """Queue a call.  ``steps=None`` takes the queue's relaxation steps; a re-adopted or
        overflowed call keeps its original ``enqueued_at`` (its place in line)."""
        settings = self.queues.get(queue)
        if not settings.join_empty and not self._logged_in(queue) and settings.overflow_queue:
            logger.info("call %s: queue %s has no agent logged in: joining %s", call.id, queue,
                        settings.overflow_queue)
            queue, settings = settings.overflow_queue, self.queues.get(settings.overflow_queue)
        call.move(CallState.QUEUED, "re-adopted" if readopted else f"enqueue {queue}")
        await self._enter(call, queue, priority, skills, steps, enqueued_at, report=not readopted)

    async def _enter(self, call: LiveCall, queue: str, priority: int, skills: dict | None,
                     steps: tuple | None, enqueued_at: datetime | None, report: bool = True) -> None:
        settings = self.queues.get(queue)
        if report and enqueued_at is None:
            enqueued_at = await self._merge_callback(call, queue)
        call.queue, call.priority, call.skill = queue, priority, settings.queue_skill
        call.skills = dict(skills or {})
        call.steps = tuple(settings.routing_steps() if steps is None else steps)
        call.enqueued_at = enqueued_at or utcnow()
        call.enqueued_mono = time.monotonic() - (utcnow() - call.enqueued_at).total_seconds()
        call.view = None
        self.calls[call.id] = call
        call.orig_position = self._position(call)
        if report:  # a re-adopted call already has its ENTERQUEUE
            self.events.enter_queue(call.id, queue, call.caller_id, call.orig_position)
        self.records.post(call.id, state="queued", queue=queue, enqueued_at=call.enqueued_at)
        # route first, then park: the agent's phone starts ringing before the caller's music
        # does (agent_answered waits for the park, so the caller is never moved too early)
        call.parked = asyncio.get_running_loop().create_future()
        self.waiting.watch(call)
        await self._dispatch_once()
        self.kick()                # the loop re-plans its next wake-up (step expiries) with this call
        parked = await self.control.park(call.id, queue, settings.moh_class)
        call.parked.set_result(parked)
        if not parked:
            await self.caller_gone(call.id)

    async def _merge_callback(self, call: LiveCall, queue: str) -> datetime | None:
        """A caller whose callback is pending in this queue called in: one entry, the older place."""
        number = self.number_of(call.caller_id) if self.callbacks is not None else None
        if number is None:
            return None
        older = await self.callbacks.merge_call_in(queue, number, call.id)
        if older is not None:
            logger.info("call %s: pending callback of %s merged, keeps entry %s", call.id, number,
                        older.isoformat())
        return older

    def _position(self, call: LiveCall) -> int:
        return position_of(call, self.calls.values()) + self.callbacks_ahead(call)

    def callbacks_ahead(self, call: LiveCall) -> int:
        if self.callbacks is None or call.queue is None:
            return 0
        return self.callbacks.ahead_of(routing.call_view(call), time.monotonic())

    async def take_callback(self, call: LiveCall, number: str) -> float | None:
        """The caller confirmed a callback to ``number``: the callback takes the call's place
        (its ORIGINAL entry time and ticket) and the call leaves the line.  Returns the
        estimated wait, for the caller to hear roughly when to expect the call."""
        eta = self.waiting.estimated_wait(call)
        position = self._position(call)
        ticket = {"priority": call.priority, "skills": dict(call.skills), "attributes": dict(call.attributes),
                  "steps": steps_to_list(call.steps)}
        callback, _ = await self.callbacks.request(
            number=number, queue=call.queue or self.fallback_queue, entered_at=call.enqueued_at or utcnow(),
            ticket=ticket, name=str(call.attributes.get("name", "")),
            reason=str(call.attributes.get("reason", "")), call_id=call.id, source=CallbackSource.IVR)
        if call.state is CallState.QUEUED:
            self.waiting.forget(call.id)
            self.calls.pop(call.id, None)
            call.move(CallState.ENDED, f"took callback {callback.id}")
            self.events.exit_with_key(call.id, call.queue or "", self.offer_key, position,
                                      call.orig_position, call.waited(time.monotonic()))
            await self.control.unpark(call.id, call.queue or "")
            await self.records.update(call.id, state="ended", outcome=Outcome.CALLBACK.value,
                                      ended_at=utcnow(), detail=f"callback {callback.id}")
            self.kick()
        return eta

    # -- agents lent to callbacks (acd.callbacks.AgentHooks) ----------------------------
    def not_responding(self, agent: LiveAgent, why: str) -> None:
        """A callback's agent leg was not answered: RONA, like a live call's."""
        agent.move(AgentState.PAUSED, why)
        agent.pause_reason = "not responding"
        self.events.agent_pause(agent.extension, sorted(agent.queues), "not responding")
        self.kick()

    def done(self, agent: LiveAgent, call_id: str, talked: bool) -> None:
        """A callback attempt released its agent: wrap-up after talking, else available."""
        wrapup = self.wrapup_seconds if agent.wrapup_seconds is None else agent.wrapup_seconds
        if talked and wrapup > 0:
            agent.move(AgentState.WRAP_UP, "callback ended", call_id=call_id)
            self._later(wrapup, lambda: self._end_wrapup(agent, call_id))
        else:
            agent.move(AgentState.AVAILABLE, "callback ended" if talked else "callback not connected",
                       call_id=call_id)
        self.kick()

    def _logged_in(self, queue: str) -> int:
        return sum(1 for a in self.roster.agents.values()
                   if queue in a.queues and a.state is not AgentState.LOGGED_OUT)

    def _staffed(self, queue: str) -> int:
        return sum(1 for a in self.roster.agents.values()
                   if queue in a.queues and a.state not in (AgentState.LOGGED_OUT, AgentState.PAUSED))

    async def _overflow(self, call: LiveCall, target: str | None) -> None:
        """Max wait reached: leave for the overflow queue (keeping the place in line)."""
        if call.state is not CallState.QUEUED or call.id not in self.calls:
            return
        waited = call.waited(time.monotonic())
        if not target or target == call.queue:
            logger.info("call %s waited %.0fs in %s; no overflow target", call.id, waited, call.queue)
            return
        self.events.exit_with_timeout(call.id, call.queue or "", self._position(call), waited, target)
        logger.info("call %s: max wait in %s, overflow to %s", call.id, call.queue, target)
        await self.control.unpark(call.id, call.queue or "")
        await self._enter(call, target, call.priority, call.skills, None, call.enqueued_at)

    # -- offering to an agent -----------------------------------------------------------
    async def _offer(self, call: LiveCall, agent: LiveAgent) -> None:
        call.attempts += 1
        channel_id = agent_channel_id(call.id, call.attempts)
        agent.move(AgentState.RINGING, "offered", call_id=call.id)
        agent.call_id = call.id
        call.agent, call.agent_channel = agent.extension, channel_id
        call.move(CallState.RINGING, f"ring {agent.extension}")
        self._ringing[channel_id] = call.id
        self._ring_started[channel_id] = time.monotonic()
        self.records.post(call.id, state="ringing", agent=agent.extension)
        ok = await self.control.ring(call.id, agent.endpoint, channel_id,
                                     timeout=self.ring_timeout, caller_id=call.caller_id)
        if not ok:
            await self._ring_failed(channel_id, cause=0)

    def _ring_start_of(self, call: LiveCall) -> float:
        return self._last_ring.pop(call.id, time.monotonic())

    async def agent_answered(self, channel_id: str, call_id: str) -> None:
        self._ringing.pop(channel_id, None)
        started = self._ring_started.pop(channel_id, None)
        if started is not None:
            self._last_ring[call_id] = started
        call = self.calls.get(call_id)
        if call is None or call.state is not CallState.RINGING or call.agent_channel != channel_id:
            logger.warning("agent leg %s answered for call %s that no longer waits", channel_id, call_id)
            await self.control.hangup(channel_id)
            return
        agent = self.roster.get(call.agent)
        if call.parked is not None:
            await call.parked      # never move the caller before the holding bridge has it
        if not await self.control.connect(call.id, channel_id, call.queue):
            await self.control.hangup(channel_id)
            await self.caller_gone(call.id)
            return
        call.move(CallState.CONNECTED, f"agent {call.agent} answered")
        now = time.monotonic()
        call.answered_mono = now
        self.waiting.forget(call.id)
        self.events.connect(call.id, call.queue or "", call.agent or "", call.waited(now),
                            now - self._ring_start_of(call), agent_channel=channel_id)
        if agent is not None:
            agent.move(AgentState.ON_CALL, "answered", call_id=call.id)
        self.records.post(call.id, state="connected", agent=call.agent, answered_at=utcnow())

    async def agent_leg_gone(self, channel_id: str, cause: int = 0) -> None:
        if channel_id in self._ringing:
            await self._ring_failed(channel_id, cause)
            return
        call = next((c for c in self.calls.values() if c.agent_channel == channel_id), None)
        if call is not None and call.state is CallState.CONNECTED:
            await self._finish(call, Outcome.ANSWERED, "agent hung up")

    async def _ring_failed(self, channel_id: str, cause: int) -> None:
        call_id = self._ringing.pop(channel_id, None)
        started = self._ring_started.pop(channel_id, time.monotonic())
        call = self.calls.get(call_id) if call_id else None
        if call is None or call.agent_channel != channel_id:
            return
        agent = self.roster.get(call.agent)
        rang = time.monotonic() - started
        self.events.ring_no_answer(call.id, call.queue or "", call.agent or "", int(rang * 1000))
        if agent is not None:  # no answer, rejected or unreachable: RONA, out of routing
            agent.move(AgentState.PAUSED, f"not responding (cause={cause}, rang {rang:.1f}s)",
                       call_id=call.id)
            agent.pause_reason = "not responding"
            self.events.agent_pause(agent.extension, sorted(agent.queues), "not responding")
        call.agent, call.agent_channel = None, None
        call.move(CallState.QUEUED, f"ring failed cause={cause}")
        await self.records.update(call.id, state="queued", agent=None)
        self.kick()

    # -- leaving ------------------------------------------------------------------------
    async def caller_gone(self, call_id: str) -> None:
        call = self.calls.get(call_id)
        if call is None:
            return
        if call.state is CallState.CONNECTED:
            await self._finish(call, Outcome.ANSWERED, "caller hung up")
        else:
            self.events.abandon(call.id, call.queue or "", self._position(call), call.orig_position,
                                call.waited(time.monotonic()))
            await self._finish(call, Outcome.ABANDONED, f"caller hung up while {call.state.value}")

    async def channel_lost(self, call_id: str, why: str) -> None:
        """The caller's channel vanished while we were not listening (ARI down, Asterisk
        restarted): not the caller's doing, so not an abandon."""
        call = self.calls.get(call_id)
        if call is not None:
            await self._finish(call, Outcome.LOST, why)

    def _report_completion(self, call: LiveCall, why: str) -> None:
        now = time.monotonic()
        talk = now - call.answered_mono
        self.waiting.record_handle_time(call.queue or "", talk)
        self.events.complete(call.id, call.queue or "", call.agent or "", call.waited(now), talk,
                             "agent" if why.startswith("agent") else "caller")

    async def _finish(self, call: LiveCall, outcome: Outcome, why: str) -> None:
        self.waiting.forget(call.id)
        self._last_ring.pop(call.id, None)
        if call.state is CallState.CONNECTED:
            self._report_completion(call, why)
        self.calls.pop(call.id, None)
        previous = call.state
        call.move(CallState.ENDED, why)
        if call.agent_channel:
            self._ringing.pop(call.agent_channel, None)
        await self.control.release(call.id, call.id, call.agent_channel or "")
        await self.records.update(call.id, state="ended", outcome=outcome.value,
                                  ended_at=utcnow(), detail=why)
        self._free_agent(call, previous)
        self.kick()

    def _free_agent(self, call: LiveCall, previous: CallState) -> None:
        agent = self.roster.get(call.agent) if call.agent else None
        if agent is None or agent.call_id not in (call.id, None):
            return
        wrapup = self.wrapup_seconds if agent.wrapup_seconds is None else agent.wrapup_seconds
        if previous is CallState.CONNECTED and wrapup > 0:
            agent.move(AgentState.WRAP_UP, "call ended", call_id=call.id)
            self._later(wrapup, lambda: self._end_wrapup(agent, call.id))
        else:
            why = "call ended, no wrap-up" if previous is CallState.CONNECTED else "call ended before answer"
            agent.move(AgentState.AVAILABLE, why, call_id=call.id)

    async def _end_wrapup(self, agent: LiveAgent, call_id: str) -> None:
        if agent.state is AgentState.WRAP_UP and agent.call_id == call_id:
            agent.move(AgentState.AVAILABLE, "wrap-up over", call_id=call_id)
            self.kick()

    def _later(self, delay: float, make_coro) -> None:
        async def run():
            await asyncio.sleep(delay)
            await make_coro()
        task = asyncio.create_task(run())
        self._timers.add(task)
        task.add_done_callback(self._timers.discard)

    # -- agents -------------------------------------------------------------------------
    def adopt_roster(self, agents: list[LiveAgent]) -> None:
        """Agents loaded at start; the auto-logged-in ones are reported as logins."""
        for agent in agents:
            self.roster.add(agent)
            if agent.state is not AgentState.LOGGED_OUT:
                self.events.agent_login(agent.extension, sorted(agent.queues))

    def device_state_changed(self, device: str, state: str) -> None:
        if self.roster.set_device_state(device, state) is not None:
            self.kick()

    def agent_command(self, extension: str, action: str, reason: str = "") -> LiveAgent:
        """login | logout | pause | unpause, from a phone feature code or the CLI.

        Raises AgentCommandError with a message fit for the person who asked."""
        agent = self.roster.get(extension)
        if agent is None:
            raise AgentCommandError(f"no agent {extension}")
        target = {"login": AgentState.AVAILABLE, "logout": AgentState.LOGGED_OUT,
                  "pause": AgentState.PAUSED, "unpause": AgentState.AVAILABLE}.get(action)
        if target is None:
            raise AgentCommandError(f"unknown action {action!r}")
        self._check_command(agent, action)
        if agent.state is not target:
            previous = agent.state
            agent.move(target, f"{action} {reason}".strip())
            agent.pause_reason = (reason or "break") if target is AgentState.PAUSED else ""
            self._report_agent(agent, previous)
        self.kick()
        return agent

    def _report_agent(self, agent: LiveAgent, previous: AgentState) -> None:
        queues = sorted(agent.queues)
        if agent.state is AgentState.LOGGED_OUT:
            self.events.agent_logout(agent.extension, queues, time.monotonic() - agent.logged_in_at)
        elif previous is AgentState.LOGGED_OUT:
            agent.logged_in_at = time.monotonic()
            self.events.agent_login(agent.extension, queues)
            if agent.state is AgentState.PAUSED:
                self.events.agent_pause(agent.extension, queues, agent.pause_reason)
        elif agent.state is AgentState.PAUSED:
            self.events.agent_pause(agent.extension, queues, agent.pause_reason)
        elif previous is AgentState.PAUSED:
            self.events.agent_unpause(agent.extension, queues)

    @staticmethod
    def _check_command(agent: LiveAgent, action: str) -> None:
        busy = agent.state in (AgentState.RINGING, AgentState.ON_CALL)
        if action == "logout" and busy:
            raise AgentCommandError(f"agent {agent.extension} is {agent.state.value}: log out after the call")
        if action in ("pause", "unpause") and agent.state is AgentState.LOGGED_OUT:
            raise AgentCommandError(f"agent {agent.extension} is logged out")
        if action == "pause" and busy:
            raise AgentCommandError(f"agent {agent.extension} is {agent.state.value}: pause after the call")
        if action == "login" and agent.state is not AgentState.LOGGED_OUT:
            raise AgentCommandError(f"agent {agent.extension} is already logged in ({agent.state.value})")

    def waiting_calls(self) -> list[dict]:
        now = time.monotonic()
        places = positions(self.calls.values())
        places = {call_id: place + self.callbacks_ahead(self.calls[call_id]) for call_id, place in places.items()}
        return [{"id": c.id, "queue": c.queue, "state": c.state.value, "caller_id": c.caller_id,
                 "position": places[c.id], "waited": round(c.waited(now), 1),
                 "announcements": self.waiting.announced.get(c.id, 0)}
                for c in self.calls.values() if c.id in places]

    def snapshot(self) -> dict[str, dict[str, int]]:
        queues: dict[str, dict[str, int]] = {}
        for agent in self.roster.agents.values():
            for q in agent.queues:
                entry = queues.setdefault(q, {"waiting": 0, "agents_available": 0})
                entry["agents_available"] += int(agent.routable)
        for call in self.calls.values():
            if call.state in (CallState.QUEUED, CallState.RINGING) and call.queue:
                queues.setdefault(call.queue, {"waiting": 0, "agents_available": 0})["waiting"] += 1
        return queues
