"""Composition root of ``callpilot serve``: constructs ARI, AMI, FastAGI, DB, ivr and acd,
and connects them.  No call handling here.

A call's way: dialplan -> ARI event (lane of its call) -> ``StasisRouter`` on ``args[0]`` ->
``ivr.stasis`` (``inbound,<flow>``: the flow runner) -> the ``handoff`` wired below ->
``acd.service`` -> ``Dispatcher.adopt`` -> ``acd.actions`` (holding bridge, agent leg,
mixing bridge).  The ACD's own roles (``enqueue``, ``agent``, ``feature``) are subscribed by
``acd.stasis``; re-adoption after a (re)connect is ``acd.readoption``.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable
from typing import Any

from acd.actions import CallControl
from acd.callback_actions import CallbackControl
from acd.callback_offer import CallbackOffers, OfferRules, OfferSettings
from acd.callback_stasis import CallbackStasis
from acd.callbacks import CallbackService, CallbackSettings, retry_rules
from acd.agent_holds import AgentHolds
from acd.agent_presence import SharedPresence
from acd.agents import AgentRoster
from acd.clock import SystemClock
from acd.degraded import DegradedCalls
from acd.dispatcher import Dispatcher
from acd.hooks import CallHooks
from acd.model import AgeBands
from acd.queue_events import QueueEventRecorder
from acd.readoption import Readoption
from acd.queues import prerender as prerender_queue_texts
from acd.roster_store import load_queues, load_roster
from acd.service import AcdService
from acd.stasis import AcdStasis
from acd.waiting import language_of
from callpilot.app import outbound_wiring
from callpilot.app.agent_reload import AgentReload
from callpilot.app.change_follow import FOLLOWED, ChangeFollower, settled
from callpilot.app.nodes import shares_agents
from callpilot.app.serve_metrics import ServeMetrics
from callpilot.app.status import StatusServer
from callpilot.infra.loop_health import LoopLag
from callpilot.infra.metrics_http import MetricsHttp
from callpilot.infra.asterisk import runner as asterisk_runner
from callpilot.infra.asterisk.agi import AgiServer
from callpilot.infra.asterisk.ami import AmiMonitor
from callpilot.infra.asterisk.ari import AriClient
from callpilot.infra.asterisk.channel_events import (HANDLED_EVENTS, ChannelInboxes, StasisRouter, lane_of,
                                                    wait_playback)
from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from callpilot.infra.db.shared_state import AgentHoldStore, AgentPresenceStore, ChangeLog, NodeBoard
from callpilot.infra.periodic import Periodic
from callpilot.infra.db.calendars import CalendarBook, CalendarStore
from callpilot.infra.db.callback_store import CallbackStore
from callpilot.infra.db.customers import CustomerDirectory
from callpilot.infra.db.records import CallRecordStore, RecordWriter, utcnow
from callpilot.infra.db.surveys import SurveyStore
from callpilot.infra.messages import MessageCatalogue, SpokenMessages
from callpilot.infra.phone_numbers import InvalidNumber, to_e164
from ivr.agi_entry import AgiFlowHandler
from ivr.stasis import InboundIvr
from ivr.transfer_leg import STASIS_ROLE as TRANSFER_ROLE, AriTransfer
from ivr.tts import PromptCache
from ivr.speech.vocabulary import answers_json
from ivr import wiring as ivr_wiring   # flows from the versioned store, speech if configured

logger = logging.getLogger(__name__)

NODE_PICTURE_SECONDS = 2.0      # this node's live picture, published for the other nodes' web


class Server:
    def __init__(self, config: Config):
        self.config = config
        engine = db.make_engine(config.db_url)
        db.create_schema(engine)
        self.sessions = db.make_sessionmaker(engine)
        self._infrastructure(config, engine)
        self._acd(config)
        self._callbacks(config)
        self._ivr(config)
        self.outbound = outbound_wiring.build(self)         # campaigns: roles outbound, outbound-amd
        # with several nodes: what another node's web changed is reloaded here too
        self.changes = (None if self.holds is None else
                        ChangeFollower(ChangeLog(self.sessions), self._reload_now))
        # ... and this node's live picture published for the other nodes' admin web
        self.node_board = (None if self.holds is None else
                           Periodic("node-status", self._publish_picture, NODE_PICTURE_SECONDS))
        self.status = StatusServer(config.state_dir / "serve.sock", self.snapshot, self.agent_command,
                                   reload=self.reload,        # and the web's phrase checks (D42):
                                   unknown_words=lambda words, wait: answers_json(self.speech, words, wait))
        self.loop_lag = LoopLag()
        self.metrics = ServeMetrics(self.snapshot)           # Prometheus, on serve's loop
        self.hooks.offered, self.hooks.originated = self.metrics.routing.offered, self.metrics.routing.originated
        self.loop_lag.observers.append(self.metrics.loop_lag.observe)
        self.metrics_http = MetricsHttp(config.metrics_host, config.metrics_port, self.metrics.registry)
        self.ari.on_event(self.router.on_event)
        self.ari.on_connect(self.ivr.resume_open_calls)     # callers in the menu first,
        self.ari.on_connect(self.readoption.resync)         # then the ACD takes the rest,
        self.ari.on_connect(self.callbacks.recover)         # callback legs left by a previous run
        self.ari.on_connect(self.outbound.calls.resync)     # campaign calls: adopt or close
        if self.holds is not None:                          # agents on re-adopted calls known:
            self.ari.on_connect(self.holds.resynced)        # a hold left behind can be told
        # calls Asterisk took on the degraded path while serve was away (dialplan -> app_queue)
        self.degraded = DegradedCalls(asterisk_runner.queue_log_path(config),
                                      CallRecordStore(self.sessions),
                                      queue=asterisk_runner.DEGRADED_QUEUE)
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task] = set()

    def _infrastructure(self, config: Config, engine) -> None:
        secrets, a = config.secrets, config.asterisk
        self.clock = SystemClock()
        self.customers = CustomerDirectory(engine)
        self.bands = AgeBands(tuple(config.acd.age_bands))
        self.records = RecordWriter(CallRecordStore(self.sessions))
        self.ari = AriClient(config.ari_client_url, secrets.ari_user, secrets.ari_password,
                             a.app_name, lane_of=lane_of, events=HANDLED_EVENTS,
                             rest_transport=a.ari_rest_transport)
        self.router = StasisRouter(ChannelInboxes())
        self.prompts = PromptCache(config.prompts_dir, config.tts_voice, config.tts_rate)
        # what the system says by itself, per language, in the call's voice (checked now: a
        # broken catalogue stops serve here, not in a call)
        self.messages = SpokenMessages(MessageCatalogue.builtin().validate(), self.prompts.sound_uri_async)
        self.agi = AgiServer(config.agi_host, config.agi_port)
        self.calendars = CalendarBook(CalendarStore(self.sessions))   # ivr branches, queue hours

    def _acd(self, config: Config) -> None:
        a, acd = config.asterisk, config.acd
        self.roster = AgentRoster()
        self.control = CallControl(self.ari, app=a.app_name)
        self.queue_events = QueueEventRecorder(self.sessions, config.state_dir / "queue_log")
        self.hooks = CallHooks(queue_open=self.calendars.open_now)   # + ivr follow-ups: _ivr()
        self.dispatcher = Dispatcher(self.control, self.roster, self.records, hooks=self.hooks,
                                     ring_timeout=acd.ring_timeout, wrapup_seconds=acd.wrapup_seconds,
                                     autopause_after=acd.autopause_after, queues=load_queues(self.sessions), speak=self._speak,
                                     events=self.queue_events, fallback_queue=acd.general_queue,
                                     bands=self.bands, clock=self.clock, give_up=self._apologise,
                                     messages=self.messages.catalogue)
        self.holds, self.presence = _shared_agents(config, self.sessions, self.roster, self.dispatcher.kick)
        self.dispatcher.holds = self.holds
        self.acd = AcdService(self.dispatcher, self.control, self.records, customers=self.customers,
                              bands=self.bands, messages=self.messages,
                              fallback_queue=acd.general_queue, clock=self.clock)
        self.acd_stasis = AcdStasis(self.acd)
        self.acd_stasis.subscribe(self.router)
        self.ami = AmiMonitor("127.0.0.1", a.ami_port, config.secrets.ami_user,
                              config.secrets.ami_secret, self._device_state)
        # a caller straight to a queue is looked up while the dialplan answers it (D36)
        self.ami.on_new_channel(asterisk_runner.TRUNK_CONTEXT, a.queue_entry_dids(),
                                self.customers.prefetch)
        self.agent_reload = AgentReload(config, self.sessions, self.bands, self.dispatcher.refresh_roster,
                                        self.ami.reload_module)     # the web changed agents

    def _callbacks(self, config: Config) -> None:
        cb, a = config.callbacks, config.asterisk
        self.callback_control = CallbackControl(self.ari, app=a.app_name, trunk_endpoint=cb.trunk_endpoint,
                                                caller_id=cb.caller_id)
        settings = CallbackSettings(
            ring_timeout=config.acd.ring_timeout, customer_ring_seconds=cb.customer_ring_seconds,
            expiry_seconds=cb.expiry_seconds, cancel_key=cb.cancel_key,
            customer_first=frozenset(cb.customer_first_queues),
            retry=retry_rules(cb.max_attempts, cb.retry_seconds, cb.voicemail_retry_seconds))
        self.callbacks = CallbackService(
            # claimed as this node (named "serve-<sip port>" before D43: two nodes on one port
            # would settle each other's attempts in flight)
            CallbackStore(self.sessions, config.node_name, earlier_names=(f"serve-{a.sip_port}",)),
            self.callback_control, self.roster,
            self.dispatcher.queues, settings, self.messages, self.queue_events,
            self.dispatcher, lambda ch, pb, t: wait_playback(self.router.inboxes, ch, pb, t))
        rules = OfferRules(self.dispatcher.queues, cb.offer_after_seconds, cb.offer_key, dict(cb.offer_after))
        self.dispatcher.attach_callbacks(self.callbacks, self._callable_number, rules.offer_key)
        self.dispatcher.waiting.offer_after = rules.offer_after
        self.dispatcher.waiting.offer_key = rules.offer_key
        offers = CallbackOffers(self.router.inboxes, self.callback_control.play, self.dispatcher.take_callback,
                                OfferSettings(cb.default_country, tuple(cb.allowed_countries)),
                                rules.offer_key, self.control.hangup, self.messages)
        self.callback_stasis = CallbackStasis(self.callbacks, offers, self.dispatcher)
        self.callback_stasis.subscribe(self.router)

    def _device_state(self, device: str, state: str) -> None:
        self.metrics.routing.device_changed(device, state)     # a phone free: routing latency
        self.dispatcher.device_state_changed(device, state)

    def _callable_number(self, caller_id: str) -> str | None:
        cb = self.config.callbacks
        try:
            return to_e164(caller_id, cb.default_country, cb.allowed_countries)
        except InvalidNumber:
            return None

    async def _speak(self, call_id: str, text: str, language: str | None = None) -> None:
        await self.acd.speak(call_id, text, language)

    async def _apologise(self, call_id: str, why: str) -> None:
        await self.acd.apologise(call_id, why)

    def _ivr(self, config: Config) -> None:
        parts = ivr_wiring.build(config, self.sessions, self.prompts, customers=self.customers,
                                 age_band=self.bands.band_of, calendars=self.calendars.get,
                                 messages=self.messages.catalogue)
        self.runner, self.flows, self.ari_speech = parts.runner, parts.flows, parts.ari_speech
        self.speech = parts.speech          # loads in the background from run() (D40)
        self.ivr = InboundIvr(self.ari, self.router.inboxes, self.records, self.runner, self.flows,
                              self.acd.handoff, fallback_queue=config.acd.general_queue,
                              speech=parts.ari_speech, flow_version=parts.store.version,
                              transfer=AriTransfer(self.ari, self.router.inboxes, app=config.asterisk.app_name),
                              surveys=SurveyStore(self.sessions))
        self.router.role("inbound", self.ivr.on_stasis_start)
        self.router.role(TRANSFER_ROLE, self.ivr.on_transfer_leg)
        self.hooks.closed = lambda call_id, said: self.ivr.say_and_hangup(call_id, said.text, said.language)
        self.hooks.survey = lambda call, flow: self.ivr.start_survey(
            call.id, call.caller_id, call.did, flow, agent=call.agent, queue=call.queue,
            language=language_of(call))
        self.readoption = Readoption(self.acd, busy=lambda call_id: call_id in self.ivr.active,
                                     replay=self.acd_stasis.on_enqueue)
        agi_handler = AgiFlowHandler(self.runner, self.flows, self.records, speech=parts.agi_speech)
        for name in set(config.asterisk.agi_dids.values()):
            self.agi.route(f"ivr/{name}", agi_handler.route_for(name))

    # -- run ----------------------------------------------------------------------------
    async def run(self) -> None:
        self.speech.start()              # a worker thread: nothing below waits for the models
        self.dispatcher.adopt_roster(load_roster(self.sessions, bands=self.bands))
        await self.flows.start()         # seed built-ins, load live versions, poll; prompts
        await self.status.start()        # render in the background: ARI registers at once
        self._render_queue_texts()
        await self.metrics_http.start()
        await self.ami.start()
        self.dispatcher.start()
        if self.holds is not None:
            self.holds.start()
            self.presence.start()
            self.changes.start()
            self.node_board.start()
        self.loop_lag.start()
        self.callbacks.start()
        self.outbound.dialer.start()
        ari_task = asyncio.create_task(self.ari.run(), name="ari")
        await self.agi.start()
        self._background(self.degraded.run(), "degraded-calls")
        gc.freeze()    # what start-up built lives as long as serve: full collections skip it (D20)
        self._install_signals()
        logger.info("serve up: %d agents, flows %s", len(self.roster.agents), sorted(self.flows))
        await self._stop.wait()
        await self.shutdown(ari_task)

    def _install_signals(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)

    def _background(self, coro, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def stop(self) -> None:
        self._stop.set()

    async def shutdown(self, ari_task: asyncio.Task) -> None:
        logger.info("serve stopping; calls stay parked in Stasis for the next start")
        for task in list(self._tasks):
            task.cancel()
        self.loop_lag.stop()
        await self.dispatcher.stop()
        if self.holds is not None:
            await self.holds.stop()
            await self.presence.stop()
            await self.changes.stop()
            await self.node_board.stop()
        await self.callbacks.stop()
        await self.outbound.dialer.stop()
        await self.outbound.calls.stop()
        self.acd_stasis.close()
        self.callback_stasis.close()
        await self.flows.close()
        if self.ari_speech is not None:
            await self.ari_speech.media.close()
        self.queue_events.close()
        await self.ari.close()
        ari_task.cancel()
        self.ami.close()
        await self.agi.stop()
        await self.status.stop()
        await self.metrics_http.stop()
        self.records.close()
        self.customers.close()

    # -- agents and status --------------------------------------------------------------
    def agent_command(self, extension: str, action: str, reason: str = "") -> dict[str, Any]:
        agent = self.dispatcher.agent_command(extension, action, reason)
        return {"agent": agent.extension, "state": agent.state.value, "pause_reason": agent.pause_reason}

    def reload(self, what: str) -> dict[str, Any] | Awaitable[dict[str, Any]]:
        """The admin web changed ``what`` in the database (status socket ``POST /reload/<what>``);
        with several nodes, the change it counted is noted first (not reloaded twice)."""
        if what not in FOLLOWED:
            raise ValueError(f"cannot reload {what!r}")
        if self.changes is None:
            return self._reload_now(what)
        return self._reload_noted(what)

    async def _reload_noted(self, what: str) -> dict[str, Any]:
        await self.changes.noted(what)
        return await settled(self._reload_now(what))

    def _reload_now(self, what: str) -> dict[str, Any] | Awaitable[dict[str, Any]]:
        if what == "agents":
            return self.agent_reload()
        if what != "queues":
            raise ValueError(f"cannot reload {what!r}")
        self.dispatcher.queues.replace(load_queues(self.sessions))
        self._render_queue_texts()
        return {"reloaded": what, "queues": len(self.dispatcher.queues.queues)}

    def _render_queue_texts(self) -> None:
        """The queues' own texts, rendered in the background in every voice a call may have:
        the catalogue's languages, the live flows' and the default voice (D31)."""
        voices = {None, *self.messages.catalogue.languages,
                  *(lang for name in self.flows for lang in self.flows(name).languages())}
        self._background(prerender_queue_texts(self.dispatcher.queues, voices, self.messages.render),
                         "queue-texts")

    async def _publish_picture(self) -> None:
        picture = self.node_picture()
        await asyncio.to_thread(NodeBoard(self.sessions).put, self.holds.node, picture, utcnow())

    def node_picture(self) -> dict[str, Any]:
        """What the admin web of another node shows of this one (compact: no per-call list)."""
        return {"node": self.holds.node, "serve": "up", "ari": self.ari.state.value,
                "queues": self.dispatcher.snapshot(), "waiting_by_queue": self.dispatcher.waiting_by_queue(),
                "callbacks": {"pending_by_queue": self.callbacks.snapshot()["pending_by_queue"]},
                "agents": self._agents_picture()}

    def _agents_picture(self) -> dict[str, dict[str, Any]]:
        return {a.extension: {"state": a.state.value, "device": a.device_state,
                              "pause_reason": a.pause_reason, "queues": sorted(a.queues),
                              "skills": a.skills, "age_band": a.age_band,
                              "routable": a.routable, "held_by": a.held_by}
                for a in self.roster.agents.values()}

    def snapshot(self) -> dict[str, Any]:
        return {
            "ari": self.ari.state.value,
            "ari_connects": self.ari.connects,
            "ari_history": [[state, at] for state, at in self.ari.history],   # oldest first
            "ari_rest": {"transport": self.ari.transport_in_use, "requests": dict(self.ari.requests),
                         "not_found": dict(self.ari.not_found)},
            "ami": self.ami.state.value,
            "speech": self.speech.snapshot(),         # per language: loading / ready / failed
            "calls": len(self.dispatcher.calls) + len(self.ivr.active),
            "call_states": {"ivr": len(self.ivr.active), **self.dispatcher.call_states()},
            "loop_lag": self.loop_lag.figures(),
            "queues": self.dispatcher.snapshot(),
            "waiting": self.dispatcher.waiting_calls(),
            "callbacks": self.callbacks.snapshot(),
            "agents": self._agents_picture(),
            "node": None if self.holds is None else self.holds.node,   # agents shared (holds)
            "outbound": self.outbound.calls.snapshot(),
        }


async def serve(config: Config) -> None:
    await Server(config).run()


def _shared_agents(config: Config, sessions, roster: AgentRoster, kick) -> tuple:
    """Agents shared by the nodes on one database (``acd.shared_agents``; "auto" = on with
    PostgreSQL): held before they are rung, their presence the same everywhere (D43).
    ``(None, None)`` when this node has its agents to itself."""
    if not shares_agents(config):
        return None, None
    node = config.node_name
    logger.info("agents shared with the other nodes on the database: this node is %r", node)
    return (AgentHolds(AgentHoldStore(sessions, node), roster, kick),
            SharedPresence(AgentPresenceStore(sessions, node), roster, kick))
