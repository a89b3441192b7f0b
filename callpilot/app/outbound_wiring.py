"""Wires the outbound campaign domain into serve: TTS from ivr's prompt cache, the hand-off
of "talk to an agent" replies into the ACD, free-agent counts from the dispatcher."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial

from callpilot.infra.db.call_vocabulary import CallState, RoutingTicket
from callpilot.infra.db.records import utcnow
from ivr.ari_driver import AriCallDriver
from ivr.driver import DTMF, CallerHangup
from ivr.tts import TtsError
from outbound.calls import AgentRequest, OutboundCalls
from outbound.dialer import Dialer
from outbound.routes import dial_endpoint
from outbound.store import CampaignStore

logger = logging.getLogger(__name__)

OUTBOUND_DID = "outbound"     # call_records.did of campaign calls handed to an agent
MIN_CONFIDENCE = 0.5          # a spoken reply below this counts as no reply (as ivr's menus)


@dataclass
class OutboundParts:
    calls: OutboundCalls
    dialer: Dialer


def build(server) -> OutboundParts:
    config = server.config
    # claimed as the node's name ("serve" on every node before D43, kept as an earlier name)
    store = CampaignStore(server.sessions, node=config.outbound.node or config.node_name,
                          earlier_names=() if config.outbound.node else ("serve",))
    async def speak(text: str, language: str) -> str:
        """Rendered once per distinct (text, voice); the contact's language picks the voice."""
        try:
            return await server.prompts.sound_uri_async(text, language.lower() or None)
        except TtsError:
            logger.warning("no TTS voice for language %r: the default voice speaks", language)
            return await server.prompts.sound_uri_async(text)

    def free_agents(queue: str) -> int:
        return server.dispatcher.snapshot().get(queue, {}).get("agents_available", 0)

    async def to_agent(request: AgentRequest) -> bool:
        """Key 2: into the ACD like an IVR hand-off; the record carries the campaign context."""
        server.records.post_open(request.channel_id, caller_id=request.phone, did=OUTBOUND_DID,
                                 state=CallState.IVR, started_at=utcnow(),
                                 journey={"outbound": request.context})
        ticket = RoutingTicket(queue=request.queue, attributes={"campaign": request.context["campaign"]})
        await server.acd.handoff(request.channel_id, request.phone, OUTBOUND_DID, ticket)
        return True

    async def listen(channel_id: str, phrases: list[str], sound: str, seconds: float,
                     language: str) -> str | None:
        """A spoken or keyed reply through ivr's speech stack (barge-in on the message), by the
        engine of the contact's language."""
        inbox = server.router.inboxes.open(channel_id)
        driver = AriCallDriver(server.ari, inbox, caller_id="", did=OUTBOUND_DID, speech=server.ari_speech)
        try:
            heard = await driver.listen(phrases, timeout=seconds, barge_in_sounds=[sound],
                                        language=language)
        except CallerHangup:
            return None
        if heard is None:
            return ""
        if isinstance(heard, DTMF):
            return heard.digits[:1]
        return heard.text if heard.confidence >= MIN_CONFIDENCE else ""

    o = config.outbound
    calls = OutboundCalls(server.ari, store, server.router.inboxes, app=config.asterisk.app_name,
                          speak=speak, to_agent=to_agent, free_agents=free_agents,
                          dial_endpoint=partial(dial_endpoint, routes=o.routes, default=o.default_route),
                          clock=utcnow, listen=listen if server.ari_speech is not None else None)
    calls.subscribe(server.router)
    dialer = Dialer(store, calls, free_agents=free_agents, clock=utcnow, poll=o.poll_seconds)
    return OutboundParts(calls, dialer)
