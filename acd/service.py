"""The ACD's call control logic behind its Stasis roles (``acd.stasis`` receives the events).

* the IVR's handoff (a flow ended with ``enqueue``): the flow's routing ticket, as it is;
* the dialplan's ``enqueue,<queue>`` (DID straight to a queue, or after a FastAGI flow): the
  ticket the flow stored with the call record, if any, else a plain ticket for the queue;
* agent feature codes (``feature,<action>``): the agent is the channel's authenticated endpoint,
  told its new state in its own (first) language;
* the fallback when something failed: a short apology in the call's language, then hang up
  (recorded as ``system``).

Every call reaches the dispatcher through :meth:`Dispatcher.adopt`.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from acd.actions import CallControl
from acd.clock import Clock
from acd.dispatcher import Dispatcher
from acd.model import AgeBands, AgentState
from acd.state import CallEntry
from acd.ticket import caller_attributes
from acd.waiting import language_of
from callpilot.infra.db.call_vocabulary import CallOutcome, CallState, RoutingTicket
from callpilot.infra.db.customers import CustomerDirectory
from callpilot.infra.db.records import RecordWriter
from callpilot.infra.messages import Said, SpokenMessages

logger = logging.getLogger(__name__)

FEATURE_MESSAGES = {AgentState.AVAILABLE: "agent.available", AgentState.LOGGED_OUT: "agent.logged_out",
                    AgentState.PAUSED: "agent.paused"}
PROMPT_SECONDS = 2.5
APOLOGY_SECONDS = 5.0


def endpoint_of(channel_name: str) -> str:
    """'PJSIP/1001-0000002a' -> '1001'."""
    return channel_name.split("/", 1)[-1].rsplit("-", 1)[0]


class AcdService:
    def __init__(self, dispatcher: Dispatcher, control: CallControl, records: RecordWriter, *,
                 customers: CustomerDirectory, bands: AgeBands, messages: SpokenMessages,
                 fallback_queue: str, clock: Clock):
        self.dispatcher = dispatcher
        self.control = control
        self.records = records
        self.customers = customers
        self.bands = bands
        self.messages = messages
        self.fallback_queue = fallback_queue
        self.clock = clock

    def caller_attributes(self, caller_id: str) -> dict:
        profile = self.customers.lookup_or_none(caller_id)
        return caller_attributes(profile, self.clock.utcnow().year, self.bands)

    # -- entries --------------------------------------------------------------------------
    async def handoff(self, call_id: str, caller_id: str, did: str, ticket: RoutingTicket) -> None:
        """IVR -> ACD: the flow's ticket, with the caller's profile under what the flow learnt."""
        try:
            await self.dispatcher.adopt(CallEntry(call_id, caller_id, did, ticket,
                                                  self.caller_attributes(caller_id)))
        except Exception:  # the IVR is done with the caller: never leave it in silence
            logger.exception("call %s: handoff to %s failed", call_id, ticket.queue)
            await self.apologise(call_id, f"handoff to {ticket.queue} failed")

    async def enqueue_from_dialplan(self, channel: dict[str, Any], queue: str, *,
                                    stored: bool = False) -> None:
        """``stored``: a flow stored the call's ticket with the record (FastAGI DIDs).  Only
        then is the record read: a straight-to-queue call never waits on the database (D7)."""
        call_id = channel["id"]
        caller_id = channel.get("caller", {}).get("number", "")
        did = channel.get("dialplan", {}).get("exten", "")
        self.records.post_open(call_id, caller_id=caller_id, did=did, state=CallState.IVR,
                               started_at=self.clock.utcnow())
        if channel.get("state") != "Up" and not await self.control.answer(call_id):
            await self.records.update(call_id, state=CallState.ENDED, outcome=CallOutcome.ABANDONED,
                                      ended_at=self.clock.utcnow(), detail="gone before answer")
            return
        ticket = await self._stored_ticket(call_id, queue) if stored else RoutingTicket(queue)
        await self.dispatcher.adopt(CallEntry(call_id, caller_id, did, ticket,
                                              self.caller_attributes(caller_id)))

    async def _stored_ticket(self, call_id: str, queue: str) -> RoutingTicket:
        """The ticket a FastAGI flow stored with the record (the dialplan carries only the
        queue's name); a plain one when there is none or it names another queue."""
        record = await self.records.get(call_id)
        stored = RoutingTicket.from_json(record.ticket) if record is not None else None
        if stored is not None and stored.queue == queue:
            return stored
        return RoutingTicket(queue=queue)

    async def speak(self, call_id: str, text: str, language: str | None = None) -> None:
        """Tell one waiting caller something in the call's language and voice (TTS cached)."""
        await self.control.play(call_id, await self.messages.render(text, language))

    # -- agent feature codes ---------------------------------------------------------------
    async def feature_code(self, channel: dict[str, Any], action: str) -> None:
        """An agent dialled a feature code: the agent is the channel's authenticated endpoint."""
        extension = endpoint_of(channel.get("name", ""))
        known = self.dispatcher.roster.get(extension)
        language = known.language if known is not None else None
        try:
            agent = self.dispatcher.agent_command(extension, action, "phone")
            said = self.messages.say(FEATURE_MESSAGES[agent.state], language, agent=" ".join(extension))
        except ValueError as exc:
            logger.info("feature code %s from %s refused: %s", action, extension, exc)
            said = self.messages.say("agent.refused", language)
        await self.say_then_hang_up(channel["id"], said, PROMPT_SECONDS)

    async def say_then_hang_up(self, channel_id: str, said: Said, seconds: float) -> None:
        try:
            await self._say(channel_id, said, seconds)
        finally:
            await self.control.hangup(channel_id)

    async def _say(self, channel_id: str, said: Said, seconds: float) -> None:
        await self.control.answer(channel_id)
        await self.control.play(channel_id, await self.messages.sound(said))
        await asyncio.sleep(seconds)

    # -- when it failed ----------------------------------------------------------------------
    async def apologise(self, channel_id: str, why: str) -> None:
        """The safe end for a caller the ACD could not take: an apology, a hang-up, a record
        that says the system (not the caller) ended the call."""
        logger.error("call %s: %s; apologising and hanging up", channel_id, why)
        call = self.dispatcher.calls.get(channel_id)
        apology = self.messages.say("call.apology", language_of(call) if call is not None else None)
        try:
            await asyncio.wait_for(self._say(channel_id, apology, APOLOGY_SECONDS),
                                   APOLOGY_SECONDS + self.dispatcher.action_deadline)
        except Exception:  # noqa: BLE001  (the hang-up and the record below must still happen)
            logger.exception("call %s: apology failed", channel_id)
        if not await self.dispatcher.end(channel_id, CallOutcome.SYSTEM, why):
            await self.control.hangup(channel_id)
            await self.records.update(channel_id, state=CallState.ENDED, outcome=CallOutcome.SYSTEM,
                                      ended_at=self.clock.utcnow(), detail=why)
