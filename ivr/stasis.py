"""Inbound calls enter here: answer, run the published flow over ARI, hand the outcome on.

The ACD is reached only through the ``handoff`` callable wired in callpilot.app.server, so ivr
never imports acd.  Every call gets a logged catch-all: whatever fails, the caller is sent
to the general queue rather than left in silence.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.asterisk.ari_helpers import safe_answer, safe_hangup
from callpilot.infra.asterisk.channel_events import ChannelInboxes
from callpilot.infra.db.call_vocabulary import CallOutcome, CallState, RoutingTicket
from callpilot.infra.db.records import RecordWriter, utcnow
from ivr.ari_driver import AriCallDriver, AriSpeech
from ivr.outcome import Outcome
from ivr.runner import FlowResult, FlowRunner
from ivr.schema import Flow

logger = logging.getLogger(__name__)

Handoff = Callable[[str, str, str, RoutingTicket], Awaitable[None]]   # call, caller, did, ticket
FlowSource = Callable[[str], Flow]


def menu_path(result: FlowResult) -> list[str]:
    """'node=value' for every answer the caller gave, e.g. ['menu=1']."""
    return [f"{i['node']}={i.get('value') or i.get('kind')}" for i in result.inputs]


class InboundIvr:
    def __init__(self, ari: AriClient, inboxes: ChannelInboxes, records: RecordWriter,
                 runner: FlowRunner, flows: FlowSource, handoff: Handoff, *, fallback_queue: str,
                 speech: AriSpeech | None = None):
        self.ari = ari
        self.inboxes = inboxes
        self.records = records
        self.runner = runner
        self.flows = flows
        self.handoff = handoff
        self.fallback_queue = fallback_queue
        self.speech = speech
        self.active: dict[str, asyncio.Task] = {}

    async def on_stasis_start(self, channel: dict[str, Any], args: list[str]) -> None:
        """Role ``inbound,<flow>``: the flow runs as the call's own task."""
        self.start(channel, args[1] if len(args) > 1 else "main")

    def start(self, channel: dict[str, Any], flow_name: str) -> None:
        call_id = channel["id"]
        task = asyncio.create_task(self._serve(channel, flow_name), name=f"ivr-{call_id}")
        self.active[call_id] = task
        task.add_done_callback(lambda _t: self.active.pop(call_id, None))

    async def _serve(self, channel: dict[str, Any], flow_name: str) -> None:
        call_id = channel["id"]
        caller_id = channel.get("caller", {}).get("number", "")
        did = channel.get("dialplan", {}).get("exten", "")
        inbox = self.inboxes.open(call_id)
        try:
            await self.records.open(call_id, caller_id=caller_id, did=did, flow=flow_name,
                                    state=CallState.IVR, started_at=utcnow())
            await self._run_flow(call_id, caller_id, did, flow_name, inbox)
        except Exception:
            logger.exception("call %s: IVR failed; sending to %s", call_id, self.fallback_queue)
            await self.handoff(call_id, caller_id, did, RoutingTicket(queue=self.fallback_queue))
        finally:
            self.inboxes.close(call_id)

    async def _run_flow(self, call_id: str, caller_id: str, did: str, flow_name: str, inbox) -> None:
        if not await safe_answer(self.ari, call_id):
            await self._ended(call_id, CallOutcome.IVR_HANGUP)
            return
        flow = self.flows(flow_name)          # the version live now; kept for the whole call
        driver = AriCallDriver(self.ari, inbox, caller_id=caller_id, did=did, speech=self.speech)
        result = await self.runner.run(flow, driver, {})
        await self.records.update(call_id, menu_path=menu_path(result), journey=result.journey())
        await self._finish(call_id, caller_id, did, result.outcome)

    async def _finish(self, call_id: str, caller_id: str, did: str, outcome: Outcome) -> None:
        if outcome.kind == "enqueue":
            await self.handoff(call_id, caller_id, did, outcome.ticket(self.fallback_queue))
            return
        if outcome.kind == "hangup" and outcome.reason == "caller":
            await self._ended(call_id, CallOutcome.IVR_HANGUP)
            return
        # hangup node, or a transfer this skeleton does not route yet: end it cleanly
        logger.info("call %s: flow ended with %s %s", call_id, outcome.kind, outcome.target or "")
        await safe_hangup(self.ari, call_id)
        await self._ended(call_id, CallOutcome.IVR_COMPLETED,
                          f"{outcome.kind} {outcome.target or ''}".strip())

    async def _ended(self, call_id: str, outcome: CallOutcome, detail: str = "") -> None:
        await self.records.update(call_id, state=CallState.ENDED, outcome=outcome, ended_at=utcnow(),
                                  detail=detail)
