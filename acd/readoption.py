"""Re-adoption after a (re)connect to ARI: the calls that stayed in Stasis while serve was away
(restart, dropped socket) are taken back from their open call records, each with its stored
routing ticket (queue, priority, skills, steps, attributes) and its place in line; calls
whose channel vanished meanwhile are closed as ``lost``."""
from __future__ import annotations

import logging
from collections.abc import Callable

from acd.actions import CallControl
from acd.dispatcher import Dispatcher
from acd.service import AcdService
from acd.state import CallEntry, CallState
from callpilot.infra.asterisk.ari_helpers import call_id_of_agent_channel, in_stasis
from callpilot.infra.db.call_vocabulary import CallOutcome, RoutingTicket
from callpilot.infra.db.models import CallRecord
from callpilot.infra.db.records import RecordWriter

logger = logging.getLogger(__name__)


class Readoption:
    def __init__(self, service: AcdService, *, busy: Callable[[str], bool] = lambda _c: False):
        self.service = service
        self.dispatcher: Dispatcher = service.dispatcher
        self.control: CallControl = service.control
        self.records: RecordWriter = service.records
        self.busy = busy                  # calls another part of serve holds (the IVR's)

    async def resync(self) -> None:
        live = await self.control.live_channels()
        await self._drop_vanished(live)
        for record in await self.records.open_calls():
            if record.id in self.dispatcher.calls or self.busy(record.id):
                continue
            try:
                await self._readopt(record, live)
            except Exception:  # one bad record must not stop the others' re-adoption
                logger.exception("call %s: re-adoption failed", record.id)
        self.dispatcher.kick()

    async def _drop_vanished(self, live: dict[str, dict]) -> None:
        """Events missed while the socket was down: calls whose channels are gone."""
        for call in list(self.dispatcher.calls.values()):
            if call.agent_channel and call.agent_channel not in live:
                await self.dispatcher.agent_leg_gone(call.agent_channel, 0)
            if call.id not in live:
                await self.dispatcher.channel_lost(call.id, "channel gone while ARI was away")

    async def _readopt(self, record: CallRecord, live: dict[str, dict]) -> None:
        if record.id not in live:
            await self.records.update(record.id, state=CallState.ENDED, outcome=CallOutcome.LOST,
                                      ended_at=self.service.clock.utcnow(),
                                      detail="channel gone while serve was away")
            return
        if not in_stasis(live[record.id]):    # e.g. still in its FastAGI flow: the dialplan has it
            logger.info("call %s is not in Stasis: left to the dialplan", record.id)
            return
        ticket = self.ticket_of(record)
        logger.info("re-adopting call %s (%s, queue %s, priority %d)", record.id, record.state,
                    ticket.queue, ticket.priority)
        stale = [cid for cid in live if call_id_of_agent_channel(cid) == record.id]
        connected = record.state == CallState.CONNECTED and stale
        if not connected:
            for channel_id in stale:  # an agent leg ringing while we were away: offer again
                await self.control.hangup(channel_id)
        await self.dispatcher.adopt(CallEntry(
            record.id, record.caller_id, record.did, ticket,
            self.service.caller_attributes(record.caller_id), enqueued_at=record.enqueued_at,
            readopted=record.state != CallState.IVR, agent=record.agent if connected else None,
            agent_channel=stale[0] if connected else None))

    def ticket_of(self, record: CallRecord) -> RoutingTicket:
        """The stored ticket; for a record written before tickets were kept, its queue."""
        stored = RoutingTicket.from_json(record.ticket)
        queue = record.queue or (stored.queue if stored else "") or self.service.fallback_queue
        if stored is None:
            return RoutingTicket(queue=queue)
        return stored if stored.queue == queue else stored.to_queue(queue)
