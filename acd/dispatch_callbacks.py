"""The dispatcher's glue to callbacks (``acd.callbacks.CallbackService``): pending callbacks
as waiting entries of the routing pass, a caller's live call merged with its pending callback,
a caller leaving the line for a callback, and the agents lent to callback attempts
(``acd.callbacks.AgentHooks``).  A mixin of :class:`acd.dispatcher.Dispatcher`: the state is
the dispatcher's; this module only groups the callback role (D18, D20).
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from acd import routing
from acd.agents import LiveAgent
from acd.model import AgentState, CallView, steps_to_list
from acd.policy.callbacks import due_callbacks
from acd.state import CallOutcome, CallState, LiveCall
from callpilot.infra.db.callbacks import CallbackSource

logger = logging.getLogger(__name__)


class CallbackGlue:
    """Callback methods of the dispatcher (``self`` is the Dispatcher, which holds
    ``callbacks``, ``number_of`` and ``offer_key``)."""

    def attach_callbacks(self, service, number_of, offer_key: Callable[[str], str]) -> None:
        """Pending callbacks join the line; ``number_of`` normalises caller IDs to E.164
        (None when not a callable number); ``offer_key`` is the key that takes a callback."""
        self.callbacks, self.number_of, self.offer_key = service, number_of, offer_key
        service.kick = self.kick

    def _due_callbacks(self, now: float) -> dict[str, tuple[str, CallView]]:
        """Pending callbacks that may be dialled now, as calls of the same matching (view id ->
        (callback id, view)): ordered by their ORIGINAL entry time among the live callers.  The
        pending set is the service's copy, refreshed off the routing path.  None pending:
        nothing to do (``pending_views`` copies the live call ids: O(calls) a pass)."""
        if self.callbacks is None or not self.callbacks.pending:
            return {}
        pending = self.callbacks.pending_views(now, live_calls=self.calls.keys())
        due = due_callbacks(pending, now, self.callbacks.dialling_numbers())
        return {callback.view.id: (callback.id, callback.view) for callback in due}

    def _release_callback(self, callback_id: str, view_id: str, extension: str) -> None:
        agent = self.roster.get(extension)
        if agent is not None and agent.routable and self.callbacks.reserve(callback_id, agent):
            self._spawn(self.callbacks.place(callback_id, agent), f"callback-{callback_id}")
            return
        logger.info("callback %s to agent %s no longer holds: handed back", callback_id, extension)
        self.routing.handed_back(view_id, extension)
        self.kick()

    # -- callbacks ----------------------------------------------------------------------
    def _callback_known(self, call: LiveCall, queue: str) -> bool:
        """Does this node hold a pending callback of the caller's number in ``queue``?
        (O(pending callbacks), nothing when there is none.)"""
        if self.callbacks is None or not self.callbacks.pending:
            return False
        number = self.number_of(call.caller_id)
        return number is not None and any(cb.number == number and cb.queue == queue
                                          for cb in self.callbacks.pending.values())

    async def _merged_entry(self, call: LiveCall, queue: str) -> datetime | None:
        """A caller whose callback is pending in this queue called in: one entry, the older
        place (the callback's entry time), or None."""
        number = self.number_of(call.caller_id) if self.callbacks is not None else None
        if number is None:
            return None
        older = await self.callbacks.merge_call_in(queue, number, call.id)
        if older is not None:
            logger.info("call %s: pending callback of %s merged, keeps entry %s", call.id, number,
                        older.isoformat())
        return older

    async def _merge_late(self, call: LiveCall, queue: str) -> None:
        """The merge for a callback this node did not hold (made elsewhere, e.g. the web),
        after the call's first offer: an agent free now takes the call whatever its entry
        time; an older time found moves the call's place back in line."""
        older = await self._merged_entry(call, queue)
        if older is None or self.calls.get(call.id) is not call or call.queue != queue:
            return
        self._set_entry(call, older)
        call.orig_position = self._position(call)
        self.records.post(call.id, enqueued_at=call.enqueued_at)
        self.kick()

    def callbacks_ahead(self, call: LiveCall) -> int:
        if self.callbacks is None or call.queue is None:
            return 0
        return self.callbacks.ahead_of(routing.call_view(call), self._now())

    async def take_callback(self, call: LiveCall, number: str) -> float | None:
        """The caller confirmed a callback to ``number``: the callback takes the call's place
        (its ORIGINAL entry time and ticket) and the call leaves the line.  Returns the
        estimated wait, for the caller to hear roughly when to expect the call."""
        eta = self.waiting.estimated_wait(call)
        position = self._position(call)
        ticket = {"priority": call.priority, "skills": dict(call.skills), "attributes": dict(call.attributes),
                  "steps": steps_to_list(call.steps)}
        callback, _ = await self.callbacks.request(
            number=number, queue=call.queue or self.fallback_queue,
            entered_at=call.enqueued_at or self.clock.utcnow(), ticket=ticket,
            name=str(call.attributes.get("name", "")), reason=str(call.attributes.get("reason", "")),
            call_id=call.id, source=CallbackSource.IVR)
        if call.state is CallState.QUEUED:
            self.waiting.forget(call.id)
            self.calls.pop(call.id, None)
            self.lines.leave(call.id)
            call.move(CallState.ENDED, f"took callback {callback.id}")
            self._routing_changed(call)
            self.events.exit_with_key(call.id, call.queue or "", self.offer_key(call.queue or ""), position,
                                      call.orig_position, call.waited(self._now()))
            self.kick()
            await self._act("unpark", call.id, self.control.unpark(call.id, call.queue or ""), None)
            await self.records.update(call.id, state=CallState.ENDED, outcome=CallOutcome.CALLBACK,
                                      ended_at=self.clock.utcnow(), detail=f"callback {callback.id}")
        return eta

    # -- agents lent to callbacks (acd.callbacks.AgentHooks) ----------------------------
    def not_responding(self, agent: LiveAgent, why: str) -> None:
        """A callback's agent leg was not answered: a missed offer, like a live call's
        (available again, or autopaused after too many in a row)."""
        self.autopause.missed(agent, agent.call_id or "", why)
        self.kick()

    def done(self, agent: LiveAgent, call_id: str, talked: bool) -> None:
        """A callback attempt released its agent: wrap-up after talking, else available."""
        wrapup = self.wrapup_seconds if agent.wrapup_seconds is None else agent.wrapup_seconds
        if talked and wrapup > 0:
            agent.move(AgentState.WRAP_UP, "callback ended", call_id=call_id)
            self._later(wrapup, lambda: self._end_wrapup(agent, call_id), f"later-wrapup-{call_id}")
        else:
            agent.move(AgentState.AVAILABLE, "callback ended" if talked else "callback not connected",
                       call_id=call_id, at=self._now())
        self.kick()
