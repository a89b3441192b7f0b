"""FastAGI entry: run a flow for a dialplan-controlled call, then hand the queue back to the
dialplan in ``CALLPILOT_QUEUE`` (the dialplan continues into ``Stasis(..., enqueue, queue)``).

The dialplan carries only the queue's name: the rest of the routing ticket (priority, skills,
steps, caller attributes) is stored with the call record before the handback, and the ACD
reads it there when the call enters Stasis.
"""
from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from callpilot.infra.db.call_vocabulary import CallOutcome, CallState
from callpilot.infra.db.records import RecordWriter, utcnow
from ivr.agi_driver import AgiCallDriver, AgiSpeech
from ivr.driver import CallerHangup
from ivr.runner import FlowRunner
from ivr.schema import Flow
from ivr.stasis import menu_path

logger = logging.getLogger(__name__)


class AgiFlowHandler:
    def __init__(self, runner: FlowRunner, flows: Callable[[str], Flow], records: RecordWriter,
                 *, speech: AgiSpeech | None = None):
        self.runner = runner
        self.flows = flows
        self.records = records
        self.speech = speech

    def route_for(self, flow_name: str) -> Callable[[object], Awaitable[None]]:
        async def handle(request) -> None:
            await self.run(request, flow_name)
        return handle

    async def run(self, request, flow_name: str) -> None:
        driver = AgiCallDriver(request, speech=self.speech)
        await self.records.open(driver.call_id, caller_id=driver.caller_id, did=driver.did,
                                flow=flow_name, state=CallState.IVR, started_at=utcnow())
        try:
            await driver.answer()
        except CallerHangup:
            await self._ended(driver.call_id)
            return
        try:
            flow = self.flows(flow_name)      # the version live now; kept for the whole call
        except Exception:
            logger.exception("call %s: flow %s unavailable; sending to %s", driver.call_id,
                             flow_name, self.runner.fallback_queue)
            await driver.set_variable("CALLPILOT_QUEUE", self.runner.fallback_queue)
            return
        result = await self.runner.run(flow, driver, {"driver": "agi"})
        await self.records.update(driver.call_id, menu_path=menu_path(result), journey=result.journey())
        outcome = result.outcome
        if outcome.kind == "enqueue" and outcome.queue:
            ticket = outcome.ticket(self.runner.fallback_queue)
            await self.records.update(driver.call_id, ticket=ticket.to_json())
            await driver.set_variable("CALLPILOT_QUEUE", outcome.queue)
        elif outcome.reason == "caller":
            await self._ended(driver.call_id)

    async def _ended(self, call_id: str) -> None:
        await self.records.update(call_id, state=CallState.ENDED, outcome=CallOutcome.IVR_HANGUP,
                                  ended_at=utcnow())
