"""Inbound calls enter here: answer, run the published flow over ARI, hand the outcome on.

The ACD is reached only through the ``handoff`` callable wired in callpilot.app.server, so ivr
never imports acd.  Every call gets a logged catch-all: whatever fails, the caller is sent
to the general queue rather than left in silence.

Where the caller is (flow version, node, answers so far) is written to the call record at every
node and answer, so a serve restarted mid-menu resumes the caller in that node
(:meth:`InboundIvr.resume_open_calls`, run on every ARI connect before the ACD's re-adoption).
A caller a ``transfer`` node had bridged to an agent phone or a route is not resumed in the
flow: the restarted serve watches that bridge again until a side hangs up.

The ACD hands callers back for two follow-ups (wired as its hooks): a post-call survey flow
when the agent hung up first (:meth:`InboundIvr.start_survey`) and a closed-queue message
(:meth:`InboundIvr.say_and_hangup`).  Each runs as its own task with a deadline and ends by
hanging the caller up.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.asterisk.ari_helpers import in_stasis, safe_answer, safe_hangup, stasis_args
from callpilot.infra.asterisk.channel_events import ChannelInbox, ChannelInboxes
from callpilot.infra.db.call_vocabulary import CallOutcome, CallState, IvrPlace, RoutingTicket
from callpilot.infra.db.records import RecordWriter, utcnow
from callpilot.infra.db.surveys import Score, SurveyStore
from ivr.ari_driver import AriCallDriver, AriSpeech
from ivr.driver import CallerHangup
from ivr.outcome import Outcome
from ivr.nodes.base import CallContext
from ivr.runner import FlowResult, FlowRunner, Resume
from ivr.schema import Flow
from ivr.transfer_leg import AriTransfer, call_id_of_leg

logger = logging.getLogger(__name__)

Handoff = Callable[[str, str, str, RoutingTicket], Awaitable[None]]   # call, caller, did, ticket
FlowSource = Callable[[str], Flow]
FlowVersion = Callable[[str, int], Flow]

SURVEY_SECONDS = 120.0        # a survey flow is cut off after this
MESSAGE_SECONDS = 60.0        # a closed message likewise


def path_of(inputs: list[dict[str, Any]]) -> list[str]:
    """'node=value' for every answer the caller gave, e.g. ['menu=1']."""
    return [f"{i['node']}={i.get('value') or i.get('kind')}" for i in inputs]


def menu_path(result: FlowResult) -> list[str]:
    return path_of(result.inputs)


class PlaceRecorder:
    """Persist where the caller is at every node and answer (``on_progress``).  Each save is
    deferred to the next loop turn, because a node masks a secret answer right after
    recording it; :meth:`flush` writes a deferred save at once."""

    def __init__(self, records: RecordWriter, call_id: str, flow: Flow):
        self.records = records
        self.call_id = call_id
        self.flow = flow
        self._due: asyncio.Handle | None = None
        self._ctx: CallContext | None = None

    def __call__(self, ctx: CallContext) -> None:
        self._ctx = ctx
        if self._due is None:
            self._due = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        if self._due is not None:
            self._due.cancel()
            self._due = None
        ctx, self._ctx = self._ctx, None
        if ctx is None:
            return
        flow = self.flow
        place = IvrPlace(flow.name, flow.version, ctx.path[-1] if ctx.path else flow.start,
                         list(ctx.path), [dict(i) for i in ctx.inputs], dict(ctx.variables))
        self.records.post(self.call_id, ivr_place=place.to_json(), menu_path=path_of(place.inputs))


async def record_flow_end(records: RecordWriter, recorder: PlaceRecorder, call_id: str,
                          result: FlowResult) -> None:
    """The flow's last place and its journey, durable before the caller is handed on.  The
    last node's save may still be deferred (a flow that ran its last nodes without a loop
    turn, e.g. on a key pressed during the greeting): it joins this awaited write, so a serve
    killed right after the handoff resumes the caller at its last node (the enqueue node
    re-enqueues it) rather than at an earlier one."""
    recorder.flush()
    await records.update(call_id, menu_path=menu_path(result), journey=result.journey())


@dataclass(frozen=True)
class IvrCall:
    id: str
    caller_id: str
    did: str
    flow_name: str


class InboundIvr:
    def __init__(self, ari: AriClient, inboxes: ChannelInboxes, records: RecordWriter,
                 runner: FlowRunner, flows: FlowSource, handoff: Handoff, *, fallback_queue: str,
                 speech: AriSpeech | None = None, flow_version: FlowVersion | None = None,
                 transfer: AriTransfer | None = None, surveys: SurveyStore | None = None):
        self.ari = ari
        self.inboxes = inboxes
        self.records = records
        self.runner = runner
        self.flows = flows
        self.flow_version = flow_version      # a published version by number (resuming calls)
        self.handoff = handoff
        self.fallback_queue = fallback_queue
        self.speech = speech
        self.transfer = transfer
        self.surveys = surveys
        self.active: dict[str, asyncio.Task] = {}
        self.followups: dict[str, asyncio.Task] = {}     # surveys, closed messages

    async def on_stasis_start(self, channel: dict[str, Any], args: list[str]) -> None:
        """Role ``inbound,<flow>``: the flow runs as the call's own task."""
        self.start(channel, args[1] if len(args) > 1 else "main")

    async def on_transfer_leg(self, channel: dict[str, Any], args: list[str]) -> None:
        """Role ``transfer,<call>``: a leg a transfer node rang has answered.  Its own inbox
        (ivr.transfer_leg) sees the StasisStart; nothing else to do here."""

    def start(self, channel: dict[str, Any], flow_name: str) -> None:
        call = IvrCall(channel["id"], channel.get("caller", {}).get("number", ""),
                       channel.get("dialplan", {}).get("exten", ""), flow_name)
        self._launch(call, None)

    def _launch(self, call: IvrCall, place: IvrPlace | None) -> None:
        if call.id in self.active:    # its StasisStart and a resync, just after a connect
            logger.info("call %s: already in its flow", call.id)
            return
        task = asyncio.create_task(self._serve(call, place), name=f"ivr-{call.id}")
        self.active[call.id] = task
        task.add_done_callback(lambda _t: self.active.pop(call.id, None))

    async def resume_open_calls(self) -> None:
        """After a (re)connect: callers still in Stasis whose record says they were in the
        IVR take up their flow where they were (same flow version, same node); a bridged
        transfer is watched again; callers whose record is already closed are hung up."""
        channels = {c["id"]: c for c in await self.ari.get("/channels")}
        live = {cid for cid, c in channels.items() if in_stasis(c)}   # a caller running an
        # AGI application belongs to the dialplan; transfer legs are looked up among all
        for record in await self.records.open_calls():
            place = IvrPlace.from_json(record.ivr_place)
            if record.state != CallState.IVR or record.id in self.active or record.id not in live:
                continue
            if place is None:       # opened, no node yet: the flow again from its start
                self._start_again(channels[record.id], "its record has no place yet")
                continue
            if await self.readopt_transfer(record.id, channels):
                continue
            logger.info("call %s: resuming flow %s v%s at %s", record.id, place.flow, place.version,
                        place.node)
            self._launch(IvrCall(record.id, record.caller_id, record.did, place.flow), place)
        await self._end_orphans({cid: channels[cid] for cid in live})

    def _start_again(self, channel: dict[str, Any], why: str) -> None:
        """A caller in ``Stasis(<app>,inbound,<flow>)`` that serve died too early to have a
        place for: its flow from the start, as its StasisStart would have run it."""
        args = stasis_args(channel, self.ari.app)
        if not args or args[0] != "inbound":
            return              # the ACD's (enqueue) or nobody's
        logger.warning("call %s: in Stasis (%s), %s: its flow starts again", channel["id"],
                       ",".join(args), why)
        self.start(channel, args[1] if len(args) > 1 else "main")

    async def _end_orphans(self, live: dict[str, dict[str, Any]]) -> None:
        """Callers left in Stasis with a closed record: a survey or closed message that a
        dead serve was playing (or a release that failed).  Nobody will speak to them again:
        hang up.  A caller of an ``inbound`` line with no record at all (serve died before
        the open) starts its flow; other channels without a record are not ours to judge."""
        for call_id in sorted(set(live) - set(self.active) - set(self.followups)):
            if call_id.startswith("cp-"):
                continue
            record = await self.records.get(call_id)
            if record is None:
                self._start_again(live[call_id], "no record (serve stopped before writing it)")
            elif record.state == CallState.ENDED:
                logger.info("call %s: still in Stasis after its record ended (%s): hung up",
                            call_id, record.outcome)
                await safe_hangup(self.ari, call_id)

    async def _serve(self, call: IvrCall, place: IvrPlace | None) -> None:
        inbox = self.inboxes.open(call.id)
        try:
            if place is None:
                await self.records.open(call.id, caller_id=call.caller_id, did=call.did,
                                        flow=call.flow_name, state=CallState.IVR, started_at=utcnow())
            await self._run_flow(call, inbox, place)
        except Exception:
            logger.exception("call %s: IVR failed; sending to %s", call.id, self.fallback_queue)
            await self.handoff(call.id, call.caller_id, call.did, RoutingTicket(queue=self.fallback_queue))
        finally:
            if call.id not in self.followups:    # a follow-up started meanwhile keeps the inbox
                self.inboxes.close(call.id)

    async def _run_flow(self, call: IvrCall, inbox: ChannelInbox, place: IvrPlace | None) -> None:
        if place is None and not await safe_answer(self.ari, call.id):
            await self._ended(call.id, CallOutcome.IVR_HANGUP)
            return
        flow = await self._flow_for(call.flow_name, place)   # kept for the whole call
        driver = AriCallDriver(self.ari, inbox, caller_id=call.caller_id, did=call.did,
                               speech=self.speech, transfer=self.transfer, keep_tap=True)
        resume = Resume(place.node, place.path, place.inputs) if place is not None else None
        recorder = PlaceRecorder(self.records, call.id, flow)
        try:
            result = await self.runner.run(flow, driver, dict(place.variables) if place else {},
                                           resume=resume, on_progress=recorder)
        finally:
            await driver.close()
        await record_flow_end(self.records, recorder, call.id, result)
        await self._finish(call, result.outcome, inbox)

    async def _flow_for(self, name: str, place: IvrPlace | None) -> Flow:
        """The version live now; for a resumed call the version it started with, if it can
        still be read."""
        if place is not None and place.version is not None and self.flow_version is not None:
            try:
                return await asyncio.to_thread(self.flow_version, name, place.version)
            except Exception:  # noqa: BLE001  (the live version is the next best)
                logger.exception("flow %s v%s unreadable: resuming on the live version", name,
                                 place.version)
        return self.flows(name)

    async def _finish(self, call: IvrCall, outcome: Outcome, inbox: ChannelInbox) -> None:
        if outcome.kind == "enqueue":
            await self.handoff(call.id, call.caller_id, call.did, outcome.ticket(self.fallback_queue))
            return
        if outcome.kind == "hangup" and outcome.reason == "caller":
            if inbox.hangup_soft:   # Asterisk hung up (shutdown), not the caller
                await self._ended(call.id, CallOutcome.SYSTEM, "ended by Asterisk in the IVR")
            else:
                await self._ended(call.id, CallOutcome.IVR_HANGUP)
            return
        # a hangup node, or a bridged transfer that is over: end it cleanly
        logger.info("call %s: flow ended with %s %s", call.id, outcome.kind, outcome.target or "")
        await safe_hangup(self.ari, call.id)
        ended = CallOutcome.TRANSFERRED if outcome.kind == "transfer" else CallOutcome.IVR_COMPLETED
        await self._ended(call.id, ended, f"{outcome.kind} {outcome.target or ''}".strip())

    async def _ended(self, call_id: str, outcome: CallOutcome, detail: str = "") -> None:
        await self.records.update(call_id, state=CallState.ENDED, outcome=outcome, ended_at=utcnow(),
                                  detail=detail)

    # -- re-adoption after a restart -------------------------------------------------------
    async def readopt_transfer(self, call_id: str, live: dict[str, dict]) -> bool:
        """A call whose bridged transfer outlived serve: watch it again until it ends (True).
        A transfer leg still ringing is hung up and False returned (the caller then resumes
        its flow at the transfer node, which rings again)."""
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
            await self._ended(call_id, CallOutcome.TRANSFERRED, f"transfer {leg} (re-adopted)")

    # -- follow-ups the ACD hands back ------------------------------------------------------
    def start_survey(self, call_id: str, caller_id: str, did: str, flow_name: str, *,
                     agent: str | None, queue: str | None, language: str | None = None) -> None:
        """The agent hung up first: the caller answers ``flow_name`` (scores stored), in the
        language the call was served in (``None``: the survey flow's own)."""
        variables = {"agent": agent or "", "queue": queue or ""}
        if language:
            variables["language"] = language
        self._follow_up(call_id, self._survey(call_id, caller_id, did, flow_name, variables),
                        SURVEY_SECONDS)

    def say_and_hangup(self, call_id: str, text: str, language: str | None = None) -> None:
        """``text`` in ``language``'s voice (None: the default voice), then hang up."""
        self._follow_up(call_id, self._say(call_id, text, language), MESSAGE_SECONDS)

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

    async def _say(self, call_id: str, text: str, language: str | None) -> None:
        driver = AriCallDriver(self.ari, self.inboxes.open(call_id), caller_id="", did="")
        await driver.play([await self.runner.prompts.sound_uri_async(text, language)], barge_in=False)

    async def _survey(self, call_id: str, caller_id: str, did: str, flow_name: str,
                      variables: dict[str, str]) -> None:
        driver = AriCallDriver(self.ari, self.inboxes.open(call_id), caller_id=caller_id, did=did,
                               speech=self.speech)
        flow = self.flows(flow_name)
        language = variables.get("language")
        if language and not flow.speaks(language):
            logger.info("call %s: survey %s has prompts only in %s; not run in %s", call_id, flow_name,
                        flow.language, language)
            variables = {k: v for k, v in variables.items() if k != "language"}
        result = await self.runner.run(flow, driver, variables)
        agent, queue = variables["agent"] or None, variables["queue"] or None
        answers = result.variables.get("survey") or {}
        logger.info("call %s: survey %s answered %s (agent %s)", call_id, flow_name, answers, agent)
        for question, score in answers.items():
            await self._store_score(Score(call_id, question, int(score), agent, queue, utcnow()),
                                    flow_name)

    async def _store_score(self, score: Score, flow_name: str) -> None:
        if self.surveys is not None:
            await asyncio.to_thread(self.surveys.add, score, flow=flow_name)
