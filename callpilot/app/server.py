"""Composition root of ``callpilot serve``: wires ARI, AMI, FastAGI, DB, ivr and acd.

Nothing else constructs these objects.  Stasis events are dispatched on ``args[0]``:
``inbound,<flow>`` (a DID answered by the IVR), ``enqueue,<queue>`` (a call handed over by
dialplan/AGI), ``agent,<call id>`` (an agent leg we originated has answered).
"""
from __future__ import annotations

import asyncio
import logging
import signal
from datetime import date
from typing import Any

from acd.actions import CallControl
from acd.agents import AgentRoster
from acd.dispatcher import Dispatcher
from acd.model import AgeBands, AgentState, steps_from_list
from acd.queue_events import QueueEventRecorder
from acd.state import CallState, LiveCall, Outcome
from acd.ticket import caller_attributes
from callpilot.infra.asterisk.agi import AgiServer
from callpilot.infra.asterisk.ami import AmiMonitor
from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.asterisk.ari_helpers import call_id_of_agent_channel, safe_answer
from callpilot.infra.asterisk.channel_events import ChannelInboxes
from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from callpilot.infra.db.records import CallRecordStore, RecordWriter, utcnow
from acd.profiles import ProfileDirectory
from acd.roster_store import load_queues, load_roster
from callpilot.app.status import StatusServer
from ivr.agi_entry import AgiFlowHandler
from ivr.outcome import Outcome as FlowOutcome
from ivr.stasis import InboundIvr
from ivr.tts import PromptCache
from ivr import wiring as ivr_wiring   # flows from the versioned store, speech if configured

logger = logging.getLogger(__name__)

FEATURE_WORDS = {"available": "you are available", "logged_out": "you are logged out",
                 "paused": "you are paused"}
FEATURE_PROMPT_SECONDS = 2.5


def endpoint_of(channel_name: str) -> str:
    """'PJSIP/1001-0000002a' -> '1001'."""
    return channel_name.split("/", 1)[-1].rsplit("-", 1)[0]


class Server:
    def __init__(self, config: Config):
        self.config = config
        engine = db.make_engine(config.db_url)
        db.create_schema(engine)
        self.sessions = db.make_sessionmaker(engine)
        self.profiles = ProfileDirectory(engine)
        self.bands = AgeBands(tuple(config.acd.age_bands))
        self.records = RecordWriter(CallRecordStore(self.sessions))
        secrets, a = config.secrets, config.asterisk
        self.ari = AriClient(config.ari_client_url, secrets.ari_user, secrets.ari_password, a.app_name)
        self.inboxes = ChannelInboxes()
        self.roster = AgentRoster()
        self.prompts = PromptCache(config.prompts_dir, config.tts_voice, config.tts_rate)
        self.control = CallControl(self.ari, app=a.app_name)
        self.queue_events = QueueEventRecorder(self.sessions, config.state_dir / "queue_log")
        self.dispatcher = Dispatcher(self.control, self.roster, self.records,
                                     ring_timeout=config.acd.ring_timeout,
                                     wrapup_seconds=config.acd.wrapup_seconds,
                                     queues=load_queues(self.sessions), speak=self.speak,
                                     events=self.queue_events,
                                     fallback_queue=config.acd.general_queue, bands=self.bands)
        ivr_parts = ivr_wiring.build(config, self.sessions, self.prompts, age_band=self.bands.band_of)
        self.runner, self.flows = ivr_parts.runner, ivr_parts.flows
        self.ari_speech = ivr_parts.ari_speech
        self.ivr = InboundIvr(self.ari, self.inboxes, self.records, self.runner, self.flows,
                              self.handoff, fallback_queue=config.acd.general_queue,
                              speech=ivr_parts.ari_speech)
        self.ami = AmiMonitor("127.0.0.1", a.ami_port, secrets.ami_user, secrets.ami_secret,
                              self.dispatcher.device_state_changed)
        self.agi = AgiServer(config.agi_host, config.agi_port)
        agi_handler = AgiFlowHandler(self.runner, self.flows, self.records, speech=ivr_parts.agi_speech)
        for name in set(a.agi_dids.values()):
            self.agi.route(f"ivr/{name}", agi_handler.route_for(name))
        self.status = StatusServer(config.state_dir / "serve.sock", self.snapshot, self.agent_command)
        self.ari.on_event(self.on_event)
        self.ari.on_connect(self.resync)
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    # -- run ----------------------------------------------------------------------------
    async def run(self) -> None:
        self.dispatcher.adopt_roster(load_roster(self.sessions, bands=self.bands))
        await self.flows.start()         # seed built-ins, load live versions, prerender, poll
        await self.status.start()
        await self.agi.start()
        await self.ami.start()
        self.dispatcher.start()
        ari_task = asyncio.create_task(self.ari.run(), name="ari")
        self._install_signals()
        logger.info("serve up: %d agents, flows %s", len(self.roster.agents), sorted(self.flows))
        await self._stop.wait()
        await self.shutdown(ari_task)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)

    def stop(self) -> None:
        self._stop.set()

    async def shutdown(self, ari_task: asyncio.Task) -> None:
        logger.info("serve stopping; calls stay parked in Stasis for the next start")
        await self.dispatcher.stop()
        await self.flows.close()
        if self.ari_speech is not None:
            await self.ari_speech.media.close()
        self.queue_events.close()
        await self.ari.close()
        ari_task.cancel()
        self.ami.close()
        await self.agi.stop()
        await self.status.stop()
        self.records.close()

    # -- events -------------------------------------------------------------------------
    async def on_event(self, event: dict[str, Any]) -> None:
        self.inboxes.route(event)
        kind = event.get("type")
        if kind == "StasisStart":
            await self._stasis_start(event)
        elif kind == "StasisEnd":
            await self._channel_gone(event["channel"]["id"], 0)
        elif kind == "ChannelDestroyed":
            await self._channel_gone(event["channel"]["id"], int(event.get("cause", 0)))

    async def _stasis_start(self, event: dict[str, Any]) -> None:
        channel, args = event["channel"], event.get("args") or []
        role = args[0] if args else ""
        if role == "inbound" and len(args) > 1:
            self.ivr.start(channel, args[1])
        elif role == "enqueue" and len(args) > 1:
            await self._enqueue_from_dialplan(channel, args[1])
        elif role == "agent" and len(args) > 1:
            await self.dispatcher.agent_answered(channel["id"], args[1])
        elif role == "feature" and len(args) > 1:
            self._spawn(self._feature_code(channel, args[1]), f"feature-{channel['id']}")
        else:
            logger.error("channel %s entered Stasis with unknown args %s: sent to %s",
                         channel["id"], args, self.config.acd.general_queue)
            await self._enqueue_from_dialplan(channel, self.config.acd.general_queue)

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _feature_code(self, channel: dict[str, Any], action: str) -> None:
        """An agent dialled a feature code: the agent is the channel's authenticated endpoint."""
        extension = endpoint_of(channel.get("name", ""))
        try:
            agent = self.dispatcher.agent_command(extension, action, "phone")
            text = f"Agent {' '.join(extension)}, {FEATURE_WORDS[agent.state.value]}."
        except ValueError as exc:
            logger.info("feature code %s from %s refused: %s", action, extension, exc)
            text = "That is not possible now."
        try:
            await safe_answer(self.ari, channel["id"])
            await self.control.play(channel["id"], await self.prompts.sound_uri_async(text))
            await asyncio.sleep(FEATURE_PROMPT_SECONDS)
        finally:
            await self.control.hangup(channel["id"])

    async def _channel_gone(self, channel_id: str, cause: int) -> None:
        if call_id_of_agent_channel(channel_id) is not None:
            await self.dispatcher.agent_leg_gone(channel_id, cause)
        elif channel_id in self.dispatcher.calls:
            await self.dispatcher.caller_gone(channel_id)

    # -- IVR -> ACD ---------------------------------------------------------------------
    async def handoff(self, call_id: str, caller_id: str, did: str, outcome: FlowOutcome) -> None:
        queue = outcome.queue or self.config.acd.general_queue
        attributes = self._caller_attributes(caller_id)
        attributes.update(outcome.attributes)       # what the flow learnt wins over the profile
        call = LiveCall(id=call_id, caller_id=caller_id, did=did, attributes=attributes)
        steps = tuple(steps_from_list(outcome.steps)) if outcome.steps else None
        await self.dispatcher.enqueue(call, queue, priority=outcome.priority, skills=outcome.skills,
                                      steps=steps)

    def _caller_attributes(self, caller_id: str) -> dict:
        return caller_attributes(self.profiles.lookup(caller_id), date.today().year, self.bands)

    async def speak(self, call_id: str, text: str) -> None:
        """Tell one waiting caller something (TTS rendered once, then cached)."""
        await self.control.play(call_id, await self.prompts.sound_uri_async(text))

    async def _enqueue_from_dialplan(self, channel: dict[str, Any], queue: str) -> None:
        caller_id = channel.get("caller", {}).get("number", "")
        did = channel.get("dialplan", {}).get("exten", "")
        attributes = self._caller_attributes(caller_id)
        self.records.post_open(channel["id"], caller_id=caller_id, did=did, state="ivr",
                               started_at=utcnow())
        if channel.get("state") != "Up" and not await safe_answer(self.ari, channel["id"]):
            await self.records.update(channel["id"], state="ended", outcome=Outcome.ABANDONED.value,
                                      ended_at=utcnow(), detail="gone before answer")
            return
        call = LiveCall(id=channel["id"], caller_id=caller_id, did=did, attributes=attributes)
        await self.dispatcher.enqueue(call, queue)

    # -- resync after (re)connect -------------------------------------------------------
    async def resync(self) -> None:
        live = await self.dispatcher.control.live_channels()
        await self._drop_vanished(live)
        for record in await self.records.open_calls():
            if record.id in self.dispatcher.calls or record.id in self.ivr.active:
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

    async def _readopt(self, record, live: dict[str, dict]) -> None:
        if record.id not in live:
            await self.records.update(record.id, state="ended", outcome=Outcome.LOST.value,
                                      ended_at=utcnow(), detail="channel gone while serve was away")
            return
        logger.info("re-adopting call %s (%s, queue %s)", record.id, record.state, record.queue)
        stale = [cid for cid in live if call_id_of_agent_channel(cid) == record.id]
        if record.state == "connected" and stale:
            self._adopt_connected(record, stale[0])
            return
        for channel_id in stale:  # an agent leg ringing while we were away: offer again
            await self.dispatcher.control.hangup(channel_id)
        call = LiveCall(id=record.id, caller_id=record.caller_id, did=record.did,
                        attributes=self._caller_attributes(record.caller_id))
        queue = record.queue or self.config.acd.general_queue
        await self.dispatcher.enqueue(call, queue, enqueued_at=record.enqueued_at,
                                      readopted=record.state != "ivr")

    def _adopt_connected(self, record, agent_channel: str) -> None:
        call = LiveCall(id=record.id, caller_id=record.caller_id, did=record.did,
                        state=CallState.CONNECTED, queue=record.queue, agent=record.agent,
                        agent_channel=agent_channel)
        self.dispatcher.calls[call.id] = call
        agent = self.roster.get(record.agent or "")
        if agent is not None and agent.state is AgentState.AVAILABLE:
            agent.move(AgentState.ON_CALL, "re-adopted connected call", call_id=call.id)
            agent.call_id = call.id

    # -- agents and status --------------------------------------------------------------
    def agent_command(self, extension: str, action: str, reason: str = "") -> dict[str, Any]:
        agent = self.dispatcher.agent_command(extension, action, reason)
        return {"agent": agent.extension, "state": agent.state.value, "pause_reason": agent.pause_reason}

    def snapshot(self) -> dict[str, Any]:
        return {
            "ari": self.ari.state.value,
            "ari_connects": self.ari.connects,
            "ami": self.ami.state.value,
            "calls": len(self.dispatcher.calls) + len(self.ivr.active),
            "queues": self.dispatcher.snapshot(),
            "waiting": self.dispatcher.waiting_calls(),
            "agents": {a.extension: {"state": a.state.value, "device": a.device_state,
                                     "pause_reason": a.pause_reason, "queues": sorted(a.queues),
                                     "skills": a.skills, "age_band": a.age_band,
                                     "routable": a.routable}
                       for a in self.roster.agents.values()},
        }


async def serve(config: Config) -> None:
    await Server(config).run()
