"""Inbound calls enter here: answer, run the published flow over ARI, hand the outcome on.

The ACD is reached only through the ``handoff`` callable wired in callpilot.app.server, so ivr
never imports acd.  Every call gets a logged catch-all: whatever fails, the caller is sent
to the general queue rather than left in silence.

The ACD hands callers back for two follow-ups (wired as its hooks): a post-call survey flow
when the agent hung up first (:meth:`InboundIvr.start_survey`) and a closed-queue message
(:meth:`InboundIvr.say_and_hangup`).  Each runs as its own task with a deadline and ends by
hanging the caller up.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.asterisk.ari_helpers import safe_answer, safe_hangup
from callpilot.infra.asterisk.channel_events import ChannelInboxes
from callpilot.infra.db.records import RecordWriter, utcnow
from callpilot.infra.db.surveys import Score, SurveyStore
from ivr.ari_driver import AriCallDriver, AriSpeech
from ivr.driver import CallerHangup
from ivr.outcome import Outcome
from ivr.runner import FlowResult, FlowRunner
from ivr.schema import Flow
from ivr.transfer_leg import AriTransfer, call_id_of_leg

logger = logging.getLogger(__name__)

Handoff = Callable[[str, str, str, Outcome], Awaitable[None]]
FlowSource = Callable[[str], Flow]

SURVEY_SECONDS = 120.0        # a survey flow is cut off after this
MESSAGE_SECONDS = 60.0        # a closed message likewise
TRANSFERRED = "transferred"   # record outcome of a call the flow bridged elsewhere


def menu_path(result: FlowResult) -> list[str]:
    """'node=value' for every answer the caller gave, e.g. ['menu=1']."""
    return [f"{i['node']}={i.get('value') or i.get('kind')}" for i in result.inputs]


class InboundIvr:
    def __init__(self, ari: AriClient, inboxes: ChannelInboxes, records: RecordWriter,
                 runner: FlowRunner, flows: FlowSource, handoff: Handoff, *, fallback_queue: str,
                 speech: AriSpeech | None = None, transfer: AriTransfer | None = None,
                 surveys: SurveyStore | None = None):
        self.ari = ari
        self.inboxes = inboxes
        self.records = records
        self.runner = runner
        self.flows = flows
        self.handoff = handoff
        self.fallback_queue = fallback_queue
        self.speech = speech
        self.transfer = transfer
        self.surveys = surveys
        self.active: dict[str, asyncio.Task] = {}
        self.followups: dict[str, asyncio.Task] = {}     # surveys, closed messages

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
                                    state="ivr", started_at=utcnow())
            await self._run_flow(call_id, caller_id, did, flow_name, inbox)
        except Exception:
            logger.exception("call %s: IVR failed; sending to %s", call_id, self.fallback_queue)
            await self.handoff(call_id, caller_id, did, Outcome("enqueue", queue=self.fallback_queue,
                                                                reason="error"))
        finally:
            if call_id not in self.followups:    # a follow-up started meanwhile keeps the inbox
                self.inboxes.close(call_id)

    async def _run_flow(self, call_id: str, caller_id: str, did: str, flow_name: str, inbox) -> None:
        if not await safe_answer(self.ari, call_id):
            await self.records.update(call_id, state="ended", outcome="ivr_hangup", ended_at=utcnow())
            return
        flow = self.flows(flow_name)          # the version live now; kept for the whole call
        driver = AriCallDriver(self.ari, inbox, caller_id=caller_id, did=did, speech=self.speech,
                               transfer=self.transfer)
        result = await self.runner.run(flow, driver, {})
        await self.records.update(call_id, menu_path=menu_path(result), journey=result.journey())
        await self._finish(call_id, caller_id, did, result.outcome)

    async def _finish(self, call_id: str, caller_id: str, did: str, outcome: Outcome) -> None:
        if outcome.kind == "enqueue":
            await self.handoff(call_id, caller_id, did, outcome)
            return
        if outcome.kind == "hangup" and outcome.reason == "caller":
            await self.records.update(call_id, state="ended", outcome="ivr_hangup", ended_at=utcnow())
            return
        # a hangup node, or a bridged transfer that is over: end it cleanly
        logger.info("call %s: flow ended with %s %s", call_id, outcome.kind, outcome.target or "")
        await safe_hangup(self.ari, call_id)
        ended = TRANSFERRED if outcome.kind == "transfer" else "ivr_completed"
        await self.records.update(call_id, state="ended", outcome=ended, ended_at=utcnow(),
                                  detail=f"{outcome.kind} {outcome.target or ''}".strip())

    # -- re-adoption after a restart -------------------------------------------------------
    async def readopt_transfer(self, call_id: str, live: dict[str, dict]) -> bool:
        """A call whose bridged transfer outlived serve: watch it again until it ends (True).
        A transfer leg still ringing is hung up and False returned (the caller is then
        re-adopted like any open call)."""
        legs = [c for c in live if call_id_of_leg(c) == call_id]
        answered = [c for c in legs if live[c].get("state") == "Up"]
        for leg in set(legs) - set(answered):
            await safe_hangup(self.ari, leg)
        if not answered or self.transfer is None:
            return False
        logger.info("call %s: re-adopting its bridged transfer %s", call_id, answered[0])
        task = asyncio.create_task(self._resume_transfer(call_id, answered[0]),
                                   name=f"ivr-xfer-{call_id}")
        self.active[call_id] = task
        task.add_done_callback(lambda _t: self.active.pop(call_id, None))
        return True

    async def _resume_transfer(self, call_id: str, leg: str) -> None:
        inbox = self.inboxes.open(call_id)
        try:
            await self.transfer.resume(inbox, leg)
        except Exception:
            logger.exception("call %s: re-adopted transfer failed", call_id)
        finally:
            self.inboxes.close(call_id)
            await safe_hangup(self.ari, call_id)
            await self.records.update(call_id, state="ended", outcome=TRANSFERRED, ended_at=utcnow(),
                                      detail=f"transfer {leg} (re-adopted)")

    # -- follow-ups the ACD hands back ------------------------------------------------------
    def start_survey(self, call_id: str, caller_id: str, did: str, flow_name: str, *,
                     agent: str | None, queue: str | None) -> None:
        """The agent hung up first: the caller answers ``flow_name`` (scores stored)."""
        self._follow_up(call_id, self._survey(call_id, caller_id, did, flow_name, agent, queue),
                        SURVEY_SECONDS)

    def say_and_hangup(self, call_id: str, text: str) -> None:
        self._follow_up(call_id, self._say(call_id, text), MESSAGE_SECONDS)

    def _follow_up(self, call_id: str, work: Coroutine[Any, Any, None], deadline: float) -> None:
        task = asyncio.create_task(self._guarded(call_id, work, deadline), name=f"ivr-after-{call_id}")
        self.followups[call_id] = task
        task.add_done_callback(lambda _t: self.followups.pop(call_id, None))

    async def _guarded(self, call_id: str, work: Coroutine[Any, Any, None], deadline: float) -> None:
        try:
            await asyncio.wait_for(work, deadline)
        except CallerHangup:
            logger.info("call %s: caller hung up during the follow-up", call_id)
        except asyncio.TimeoutError:
            logger.warning("call %s: follow-up cut off after %.0f s", call_id, deadline)
        except Exception:
            logger.exception("call %s: follow-up failed", call_id)
        finally:
            self.inboxes.close(call_id)
            await safe_hangup(self.ari, call_id)

    async def _say(self, call_id: str, text: str) -> None:
        driver = AriCallDriver(self.ari, self.inboxes.open(call_id), caller_id="", did="")
        await driver.play([await self.runner.prompts.sound_uri_async(text)], barge_in=False)

    async def _survey(self, call_id: str, caller_id: str, did: str, flow_name: str,
                      agent: str | None, queue: str | None) -> None:
        driver = AriCallDriver(self.ari, self.inboxes.open(call_id), caller_id=caller_id, did=did,
                               speech=self.speech)
        result = await self.runner.run(self.flows(flow_name), driver,
                                       {"agent": agent or "", "queue": queue or ""})
        answers = result.variables.get("survey") or {}
        logger.info("call %s: survey %s answered %s (agent %s)", call_id, flow_name, answers, agent)
        for question, score in answers.items():
            await self._store_score(Score(call_id, question, int(score), agent, queue, utcnow()),
                                    flow_name)

    async def _store_score(self, score: Score, flow_name: str) -> None:
        if self.surveys is not None:
            await asyncio.to_thread(self.surveys.add, score, flow=flow_name)
