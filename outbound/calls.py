"""Campaign calls on ARI: originate, AMD, message and replies, voicemail, safe-harbor abandon.

Stasis roles (``args[0]``): ``outbound`` - an originated campaign call was answered;
``outbound-amd,<AMDSTATUS>,<AMDCAUSE>`` - it came back from the AMD dialplan context.
The channel id is ``cp-out-<attempt id>``: everything about a call is found from it, also by
a restarted serve (ringing calls are adopted; see :meth:`OutboundCalls.recover`).

Answering machines: Asterisk's AMD() runs in dialplan (``[callpilot-outbound-amd]``); ARI
cannot run it, so an answered call is sent there with ``continue`` and comes back into Stasis
with the result.  NOTSURE counts as a person; a key pressed during the voicemail message
makes the call a person's.
"""
from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Awaitable, Callable

from callpilot.infra.asterisk.ari import AriClient, AriError
from callpilot.infra.asterisk.ari_helpers import safe_hangup, safe_stop_playback
from callpilot.infra.asterisk.channel_events import ChannelInbox, ChannelInboxes, StasisRouter
from callpilot.infra.db.campaigns import GLOBAL_DNC, Campaign
from outbound.message import Texts, texts_for
from outbound.model import AmdResult, CampaignMode, ContactOutcome, Reply
from outbound.policy.pacing import MIN_RING_SECONDS
from outbound.store import CampaignStore, Claim

logger = logging.getLogger(__name__)

AMD_CONTEXT = "callpilot-outbound-amd"
ACTION_DEADLINE = 8.0         # every ARI request of a campaign call
REPLY_SECONDS = 6.0           # silence after the message before the call ends without a reply
MAX_PLAYS = 3                 # the message, then "3 = repeat" twice at most
PLAY_DEADLINE = 120.0

Speak = Callable[[str, str], Awaitable[str]]           # (text, language) -> sound URI
# (channel, phrases, sound URI, seconds) -> a key or a phrase heard ("" = nothing), None = gone
Listen = Callable[[str, list[str], str, float, str], Awaitable[str | None]]   # (..., language)


@dataclass(frozen=True)
class AgentRequest:
    """A campaign call handed to the ACD, with the context an agent sees in the record."""
    channel_id: str
    phone: str
    queue: str
    context: dict


class Phase(enum.Enum):
    RINGING = "ringing"
    AMD = "amd"
    TALKING = "talking"
    DONE = "done"


@dataclass
class LiveAttempt:
    claim: Claim
    campaign: Campaign
    texts: Texts
    phase: Phase = Phase.RINGING
    amd: str = ""
    plays: int = field(default=0)

    @property
    def channel_id(self) -> str:
        return self.claim.channel_id

    def move(self, phase: Phase, why: str) -> None:
        logger.info("outbound %s (%s, campaign %s): %s -> %s (%s)", self.channel_id, self.claim.phone,
                    self.campaign.name, self.phase.value, phase.value, why)
        self.phase = phase


def outcome_of_cause(cause: int) -> ContactOutcome:
    """Q.850 cause of a call never answered."""
    if cause == 17:
        return ContactOutcome.BUSY
    if cause in (16, 18, 19, 31):        # ring timeout / no answer / CANCEL
        return ContactOutcome.NO_ANSWER
    return ContactOutcome.FAILED


class OutboundCalls:
    def __init__(self, ari: AriClient, store: CampaignStore, inboxes: ChannelInboxes, *, app: str,
                 speak: Speak, to_agent: Callable[[AgentRequest], Awaitable[bool]],
                 free_agents: Callable[[str], int], dial_endpoint: Callable[[str], str | None],
                 clock: Callable[[], datetime], listen: Listen | None = None):
        self.ari, self.store, self.inboxes, self.app = ari, store, inboxes, app
        self.listen = listen
        self.speak, self.to_agent, self.free_agents = speak, to_agent, free_agents
        self.dial_endpoint, self.clock = dial_endpoint, clock
        self.live: dict[str, LiveAttempt] = {}
        self._tasks: set[asyncio.Task] = set()

    def snapshot(self) -> dict[str, dict[str, int]]:
        """Live campaign calls per campaign and phase (for ``callpilot status``)."""
        out: dict[str, dict[str, int]] = {}
        for attempt in self.live.values():
            phases = out.setdefault(attempt.campaign.name, {})
            phases[attempt.phase.value] = phases.get(attempt.phase.value, 0) + 1
        return out

    def ringing(self, campaign: str) -> int:
        return sum(1 for a in self.live.values()
                   if a.campaign.name == campaign and a.phase is Phase.RINGING)

    # -- dialling ------------------------------------------------------------------------
    def _attempt(self, claim: Claim, campaign: Campaign) -> LiveAttempt:
        texts = texts_for(campaign.template, campaign.voicemail_template, campaign.callback_number,
                          campaign.purpose or campaign.name, claim.name, claim.variables,
                          has_menu=bool(campaign.replies), replies=campaign.replies)
        return LiveAttempt(claim, campaign, texts)

    async def originate(self, claim: Claim, campaign: Campaign) -> bool:
        """Dial one claimed attempt; its message is rendered first (the safe harbor leaves no
        time to synthesise after the answer)."""
        attempt = self._attempt(claim, campaign)
        self.live[claim.channel_id] = attempt      # before any await: recover() must see it
        endpoint = self.dial_endpoint(claim.phone)
        if endpoint is None:
            await self._finish(attempt, ContactOutcome.FAILED, detail="no route for this number")
            return False
        try:
            await self._prerender(attempt)
            await asyncio.wait_for(self.ari.post(
                f"/channels/{claim.channel_id}", endpoint=endpoint, app=self.app,
                appArgs="outbound", timeout=max(MIN_RING_SECONDS, campaign.ring_seconds),
                callerId=campaign.caller_id or None), ACTION_DEADLINE)
            return True
        except Exception as exc:      # never leave a claimed attempt open: it would hold a slot
            logger.exception("outbound %s: not dialled", claim.channel_id)
            await self._finish(attempt, ContactOutcome.FAILED, detail=f"not dialled: {exc}")
            return False

    async def _prerender(self, attempt: LiveAttempt) -> None:
        t = attempt.texts
        for text in (t.message, t.voicemail, t.abandoned, t.thanks, t.opted_out, t.goodbye):
            if text:
                await self.speak(text, attempt.claim.language)

    # -- events --------------------------------------------------------------------------
    def subscribe(self, router: StasisRouter) -> None:
        router.role("outbound", self.on_stasis_start)
        router.role("outbound-amd", self.on_stasis_start)
        router.listen(self.on_event)

    async def on_stasis_start(self, channel: dict[str, Any], args: list[str]) -> None:
        self._stasis_start(self.live.get(channel["id"]), channel["id"], args)

    async def on_event(self, event: dict[str, Any]) -> None:
        """Every ARI event (in its call's lane): a campaign call that never got to talk ends."""
        if event.get("type") != "ChannelDestroyed":
            return
        attempt = self.live.get((event.get("channel") or {}).get("id", ""))
        if attempt is not None:
            self._destroyed(attempt, int(event.get("cause", 0)))

    def _stasis_start(self, attempt: LiveAttempt | None, channel_id: str, args: list[str]) -> None:
        if attempt is None:
            logger.warning("outbound %s entered Stasis with no live attempt: hung up", channel_id)
            self._spawn(asyncio.wait_for(safe_hangup(self.ari, channel_id), ACTION_DEADLINE), channel_id)
        elif args[:1] == ["outbound"] and attempt.phase is Phase.RINGING:
            self._spawn(self._answered(attempt), channel_id)
        elif args[:1] == ["outbound-amd"] and attempt.phase is Phase.AMD:
            attempt.amd = args[1] if len(args) > 1 else ""
            attempt.move(Phase.TALKING, f"AMD {attempt.amd} {args[2] if len(args) > 2 else ''}".strip())
            self._spawn(self._after_amd(attempt), channel_id)
        else:
            logger.error("outbound %s: unexpected StasisStart %s in %s", channel_id, args, attempt.phase)

    def _destroyed(self, attempt: LiveAttempt, cause: int) -> None:
        if attempt.phase is Phase.RINGING:
            outcome = outcome_of_cause(cause)
            self._spawn(self._finish(attempt, outcome, detail=f"cause {cause}"), attempt.channel_id)
        elif attempt.phase is Phase.AMD:
            self._spawn(self._finish(attempt, ContactOutcome.FAILED, amd=AmdResult.HANGUP.value,
                                     detail="hung up during AMD"), attempt.channel_id)
        # TALKING: the conversation sees the inbox go and finishes the attempt itself

    def _spawn(self, coro, name: str) -> None:
        task = asyncio.create_task(self._logged(coro, name), name=f"outbound-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _logged(self, coro, name: str) -> None:
        try:
            await coro
        except Exception:        # one call's failure must not stop the others
            logger.exception("outbound %s: handler failed; hanging up", name)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(safe_hangup(self.ari, name), ACTION_DEADLINE)
            attempt = self.live.get(name)
            if attempt is not None:
                await self._finish(attempt, ContactOutcome.FAILED, detail="internal error")

    # -- the conversation ------------------------------------------------------------------
    async def _answered(self, attempt: LiveAttempt) -> None:
        await self._mark(attempt, answered_at=self.clock())
        if not attempt.campaign.amd:
            attempt.move(Phase.TALKING, "answered (AMD off)")
            await self._person(attempt)
            return
        attempt.move(Phase.AMD, "answered")
        self.inboxes.close(attempt.channel_id)      # leaving Stasis: its StasisEnd is expected
        await asyncio.wait_for(self.ari.post(f"/channels/{attempt.channel_id}/continue",
                                             context=AMD_CONTEXT, extension="amd", priority=1),
                               ACTION_DEADLINE)

    async def _after_amd(self, attempt: LiveAttempt) -> None:
        await self._mark(attempt, amd_status=attempt.amd)
        try:
            result = AmdResult(attempt.amd)
        except ValueError:
            result = AmdResult.NOTSURE
        if result.is_person:
            await self._person(attempt)
        else:
            await self._machine(attempt)

    async def _machine(self, attempt: LiveAttempt) -> None:
        if not attempt.texts.voicemail:
            await self._end(attempt, ContactOutcome.MACHINE, detail="machine, no voicemail message")
            return
        digit = await self._say(attempt, attempt.texts.voicemail, listen=0.0)
        if digit not in (None, ""):
            logger.info("outbound %s: key %s during the voicemail message: a person", attempt.channel_id, digit)
            await self._person(attempt, typed=digit)
            return
        await self._end(attempt, ContactOutcome.MACHINE, detail="voicemail message left")

    async def _person(self, attempt: LiveAttempt, typed: str = "") -> None:
        await self._mark(attempt, live_answer=True)
        if CampaignMode(attempt.campaign.mode) is CampaignMode.PROGRESSIVE:
            await self._connect_or_abandon(attempt)
            return
        digit = typed or await self._ask(attempt)
        while digit is not None and self._reply(attempt, digit) is Reply.REPEAT and attempt.plays < MAX_PLAYS:
            digit = await self._ask(attempt)
        if digit is None:
            await self._finish(attempt, ContactOutcome.REACHED, detail="hung up during the message")
            return
        await self._act(attempt, digit, self._reply(attempt, digit))

    async def _ask(self, attempt: LiveAttempt) -> str | None:
        """The message, answered by a key or, when the campaign's replies name phrases and
        speech is configured, by voice (a key still wins)."""
        phrases = [k for k in (attempt.campaign.replies or {}) if not k.isdigit()]
        if self.listen is None or not phrases:
            return await self._say(attempt, attempt.texts.message, listen=REPLY_SECONDS)
        attempt.plays += 1
        uri = await self.speak(attempt.texts.message, attempt.claim.language)
        return await self.listen(attempt.channel_id, phrases, uri, REPLY_SECONDS, attempt.claim.language)

    def _reply(self, attempt: LiveAttempt, digit: str) -> Reply | None:
        value = (attempt.campaign.replies or {}).get(digit)
        try:
            return Reply(value) if value else None
        except ValueError:
            return None

    async def _act(self, attempt: LiveAttempt, digit: str, reply: Reply | None) -> None:
        if reply is Reply.CONFIRM:
            await self._say(attempt, attempt.texts.thanks, listen=0.0)
            await self._end(attempt, ContactOutcome.CONFIRMED, reply=digit)
        elif reply is Reply.OPT_OUT:
            # TSR 16 CFR 310.4(b)(1)(iii)(A): the seller's own (entity-specific) DNC list
            await asyncio.to_thread(self.store.add_dnc, attempt.claim.phone, GLOBAL_DNC,
                                    f"key {digit} in {attempt.campaign.name}", self.clock())
            await self._say(attempt, attempt.texts.opted_out, listen=0.0)
            await self._end(attempt, ContactOutcome.OPTED_OUT, reply=digit)
        elif reply is Reply.AGENT:
            await self._transfer(attempt, digit)
        else:
            await self._say(attempt, attempt.texts.goodbye, listen=0.0)
            await self._end(attempt, ContactOutcome.REACHED, reply=digit or "",
                            detail="no reply" if not digit else f"key {digit} has no meaning")

    async def _transfer(self, attempt: LiveAttempt, digit: str) -> bool:
        c = attempt.claim
        context = {"campaign": c.campaign, "contact_id": c.contact_id, "attempt": c.attempt_id,
                   "name": c.name, "reply": digit, "variables": c.variables}
        self.inboxes.close(attempt.channel_id)
        handed = await self.to_agent(AgentRequest(attempt.channel_id, c.phone,
                                                  attempt.campaign.agent_queue, context))
        if handed:
            await self._finish(attempt, ContactOutcome.TRANSFERRED, reply=digit,
                               detail=f"queue {attempt.campaign.agent_queue}")
            return True
        await self._say(attempt, attempt.texts.abandoned, listen=0.0)
        await self._end(attempt, ContactOutcome.REACHED, reply=digit, detail="no agent could take it")
        return False

    async def _connect_or_abandon(self, attempt: LiveAttempt) -> None:
        """Progressive mode: a live answer goes to an agent at once; with none free it is an
        abandoned call (TSR safe harbor: the recorded message, then hang up)."""
        if self.free_agents(attempt.campaign.agent_queue) > 0 and await self._transfer(attempt, ""):
            return
        await self._say(attempt, attempt.texts.abandoned, listen=0.0)
        await self._end(attempt, ContactOutcome.ABANDONED, abandoned=True,
                        detail="live answer, no agent free within 2 s")

    # -- media -----------------------------------------------------------------------------
    async def _say(self, attempt: LiveAttempt, text: str, listen: float) -> str | None:
        """Play ``text``; return the first key pressed while it plays or within ``listen``
        seconds after it ("" when none), or None when the call is gone."""
        box = self.inboxes.open(attempt.channel_id)
        attempt.plays += 1
        playback = f"{attempt.channel_id}-pb{attempt.plays}"
        uri = await self.speak(text, attempt.claim.language)
        try:
            await asyncio.wait_for(self.ari.post(f"/channels/{attempt.channel_id}/play/{playback}",
                                                 media=uri), ACTION_DEADLINE)
        except AriError:
            return None
        digit = await self._wait_key(box, playback, PLAY_DEADLINE)
        if digit is not None and digit != "":
            await asyncio.wait_for(safe_stop_playback(self.ari, playback), ACTION_DEADLINE)
            return digit
        if digit is None or listen <= 0:
            return digit
        return await self._wait_key(box, None, listen)

    async def _wait_key(self, box: ChannelInbox, playback: str | None, seconds: float) -> str | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        while True:
            if box.digits:
                return box.digits.pop(0)
            if box.gone:
                return None
            if playback is not None and playback in box.finished_playbacks:
                return ""
            left = deadline - loop.time()
            if left <= 0:
                return ""
            await box.wait_change(left)

    # -- endings ---------------------------------------------------------------------------
    async def _end(self, attempt: LiveAttempt, outcome: ContactOutcome, **facts) -> None:
        await self._finish(attempt, outcome, **facts)
        await asyncio.wait_for(safe_hangup(self.ari, attempt.channel_id), ACTION_DEADLINE)

    async def _finish(self, attempt: LiveAttempt, outcome: ContactOutcome, **facts) -> None:
        if attempt.phase is not Phase.DONE:
            attempt.move(Phase.DONE, outcome.value)
        self.live.pop(attempt.channel_id, None)
        self.inboxes.close(attempt.channel_id)
        facts.setdefault("amd", attempt.amd)
        await asyncio.to_thread(self.store.finish, attempt.claim.attempt_id, outcome, self.clock(), **facts)

    async def _mark(self, attempt: LiveAttempt, **values) -> None:
        await asyncio.to_thread(self.store.mark, attempt.claim.attempt_id, **values)

    # -- after a restart ---------------------------------------------------------------------
    async def resync(self) -> None:
        """On every (re)connect of the ARI socket: reconcile open attempts with Asterisk."""
        channels = await asyncio.wait_for(self.ari.get("/channels"), ACTION_DEADLINE)
        await self.recover({c["id"]: c for c in channels})

    async def recover(self, live_channels: dict[str, dict]) -> None:
        """Open attempts nobody here knows: ringing ones are adopted (their answer still
        arrives as StasisStart), answered ones are hung up, gone ones are recorded as unknown.
        None is dialled again: a new attempt gets a new id after its retry delay."""
        for row in await asyncio.to_thread(self.store.open_attempts):
            claim, campaign = await asyncio.to_thread(self.store.claim_of, row.id)
            if claim.channel_id in self.live:
                continue
            attempt = self._attempt(claim, campaign)
            channel = live_channels.get(claim.channel_id)
            if channel is None:
                await self._finish(attempt, ContactOutcome.UNKNOWN, detail="channel gone while serve was away")
            elif channel.get("state") == "Up":
                await self._end(attempt, ContactOutcome.UNKNOWN, detail="answered while serve was away")
            else:
                self.live[claim.channel_id] = attempt
                logger.info("outbound %s: still ringing after a restart: adopted", claim.channel_id)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
