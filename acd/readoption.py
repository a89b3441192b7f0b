"""Re-adoption after a (re)connect to ARI: the calls that stayed in Stasis while serve was away
(restart, dropped socket) are taken back from their open call records, each with its stored
routing ticket (queue, priority, skills, steps, attributes) and its place in line; calls
whose channel vanished meanwhile are closed as ``lost``.

A caller that entered ``Stasis(<app>,enqueue,<queue>)`` just before serve died can have no
record at all (its open is a write-behind post, D7): its channel's ``app_data`` still says
where it was going, so it is enqueued as its StasisStart would have done (``replay``)."""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from acd.actions import CallControl
from acd.dispatcher import Dispatcher
from acd.service import AcdService
from acd.state import CallEntry, CallState
from callpilot.infra.asterisk.ari_helpers import call_id_of_agent_channel, in_stasis, stasis_args
from callpilot.infra.db.call_vocabulary import CallOutcome, RoutingTicket
from callpilot.infra.db.models import CallRecord
from callpilot.infra.db.records import RecordWriter

logger = logging.getLogger(__name__)


Replay = Callable[[dict[str, Any], list[str]], Awaitable[None]]   # (channel, Stasis args)


class Readoption:
    def __init__(self, service: AcdService, *, busy: Callable[[str], bool] = lambda _c: False,
                 replay: Replay | None = None):
        self.service = service
        self.dispatcher: Dispatcher = service.dispatcher
        self.control: CallControl = service.control
        self.records: RecordWriter = service.records
        self.busy = busy                  # calls another part of serve holds (the IVR's)
        self.replay = replay              # the enqueue role's handler (acd.stasis)

    async def resync(self) -> None:
        await self.control.learn_bridges()     # before any release of this resync
        live = await self.control.live_channels()
        await self._drop_vanished(live)
        recorded: set[str] = set()
        for record in await self.records.open_calls():
            recorded.add(record.id)
            if record.id in self.dispatcher.calls or self.busy(record.id):
                continue
            try:
                await self._readopt(record, live)
            except Exception:  # one bad record must not stop the others' re-adoption
                logger.exception("call %s: re-adoption failed", record.id)
        await self._enqueue_unrecorded(live, recorded)
        self.dispatcher.kick()

    async def _enqueue_unrecorded(self, live: dict[str, dict], recorded: set[str]) -> None:
        """Callers in ``Stasis(<app>,enqueue,...)`` with no record at all."""
        if self.replay is None:
            return
        for call_id, channel in live.items():
            args = stasis_args(channel, self.control.app)
            if (not args or args[0] != "enqueue" or call_id in recorded
                    or call_id in self.dispatcher.calls or self.busy(call_id)):
                continue
            if await self.records.get(call_id) is not None:   # ended, or opened meanwhile
                continue
            logger.warning("call %s: in Stasis (%s) with no record (serve stopped before "
                           "writing it): enqueued now", call_id, ",".join(args))
            try:
                await self.replay(channel, args)
            except Exception:  # noqa: BLE001  (the next caller must still be taken)
                logger.exception("call %s: enqueue of an unrecorded caller failed", call_id)

    async def _drop_vanished(self, live: dict[str, dict]) -> None:
        """Events missed while the socket was down: calls whose channels are gone."""
        for call in list(self.dispatcher.calls.values()):
            if call.agent_channel and call.agent_channel not in live:
                await self.dispatcher.agent_leg_gone(call.agent_channel, 0, hung_up=True)
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
        ticket = self.ticket_of(record, self._queue_in_dialplan(live[record.id]))
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

    def _queue_in_dialplan(self, channel: dict[str, Any]) -> str:
        """``Stasis(<app>,enqueue,<queue>)``'s queue: where a caller whose record was opened
        but not yet queued (write-behind) was going."""
        args = stasis_args(channel, self.control.app) or []
        return args[1] if len(args) > 1 and args[0] == "enqueue" else ""

    def ticket_of(self, record: CallRecord, dialplan_queue: str = "") -> RoutingTicket:
        """The stored ticket; for a record written before tickets were kept, its queue; for
        a record not yet queued, the queue its Stasis() line names."""
        stored = RoutingTicket.from_json(record.ticket)
        queue = (record.queue or (stored.queue if stored else "") or dialplan_queue
                 or self.service.fallback_queue)
        if stored is None:
            return RoutingTicket(queue=queue)
        return stored if stored.queue == queue else stored.to_queue(queue)
