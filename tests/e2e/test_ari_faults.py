"""ARI faults on a real Asterisk with real SIP UAs: one call hit by a fault ends in a safe,
recorded state while the other calls keep flowing at their normal pace.

serve talks to Asterisk through :class:`testkit.ari_faults.AriFaultProxy` (``asterisk.ari_url``),
which fails, delays or cuts chosen ARI requests, or cuts the events WebSocket.  Its own
Asterisk instance: DID 805 goes straight into queue ``faults`` (no IVR, no announcements, no
routing steps), served by 10 sipp agent phones.

How "normal pace" is judged: every test first places a baseline of 5 concurrent calls on the
same instance, then the faulted call, then 5 other calls while the fault is in effect.  A
call's latency is measured on timestamps, not on the test's clock: from Asterisk's creation
of the caller's channel (``creationtime`` of the StasisStart the proxy relayed, which also
counts any time the event waited inside serve) to the call record's ``answered_at``; and the
record's own ``enqueued_at -> answered_at``.  Each other call must stay within
``SLACK`` seconds of the slowest baseline call: a call that waited behind the faulted one for
the fault's duration (2 s) or forever does not.  (The events-socket test takes its baseline
from the calls that are talking when the socket is cut, and places its 5 other calls once
serve is back: while serve's socket is down the application is not registered, so calls
arriving then take Asterisk's degraded path, app_queue over the same agents; the test places
2 such calls and checks that they reach agents and are recorded once serve is back.)

Faults: addChannel 500 at park and at connect; the agent-leg originate 2 s slow (request or
answer held); an originate whose answer is lost to a cut connection; the events socket cut at
the moment one call is bridged (its caller staying or leaving during the outage); a bridge
that fails every time for one call (the caller must be told and hung up after a few tries).
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import secrets
from datetime import timedelta

import pytest

from acd.dispatcher import ACTION_DEADLINE, MAX_BRIDGE_FAILURES
from callpilot.infra.asterisk import runner
from tests.e2e.helpers import asterisk_running
from callpilot.infra.config import AcdConfig, Config
from callpilot.infra.db.models import CallRecord
from testkit.ari_faults import AriFaultProxy, Cut, CutEvents, Delay, Exchange, Fail, Hold, Rule, ari_time
from testkit.isolated import isolated_config, seed_queue_agents
from testkit.sipua import AgentPhone, Caller, CallResult
from tests.e2e.serve_proc import ServeProcess, records_for, wait_record

pytestmark = pytest.mark.e2e
logger = logging.getLogger(__name__)

DID, QUEUE = "805", "faults"
AGENTS = 10                    # up to 9 calls at once, and a spare for a paused agent
OTHERS = 5
TALKING = 3                    # calls already talking when the events socket is cut
SLACK = 1.0                    # seconds over the slowest baseline call still "normal"
SLOW = 2.0                     # the slow originate
HOLD_PARK = r"/ari/bridges/cp-hold-[^/]+/addChannel"
CALL_BRIDGE = r"/ari/bridges/cp-call-[^/]+/addChannel"
AGENT_LEG = r"/ari/channels/cp-agent-[^/]+"


@pytest.fixture(scope="module")
def instance(tmp_path_factory):
    """Own Asterisk: agents 3001-3010 in queue ``faults``, DID 805 straight to it."""
    cfg = isolated_config(tmp_path_factory.mktemp("ari-faults") / "state",
                          dids={}, agi_dids={}, queue_dids={DID: QUEUE})
    # the faults here are Asterisk's and serve's, not the phones': no autopause (test_autopause.py)
    cfg.acd = AcdConfig(ring_timeout=6, wrapup_seconds=1, general_queue=QUEUE, autopause_after=0)
    passwords = seed_queue_agents(cfg, QUEUE, AGENTS, ext_base=3001, title="fault tests",
                                  announce_frequency=0, steps=[])
    with asterisk_running(cfg):
        yield cfg, passwords


@pytest.fixture
async def proxy(instance):
    async with AriFaultProxy(instance[0].ari_url) as p:
        yield p


@pytest.fixture
async def cfg(instance, proxy):
    """The instance's config with serve reaching ARI only through the proxy (conftest's
    ``serve`` fixture runs serve on it).  Afterwards every call left up is ended."""
    base, _ = instance
    yield dataclasses.replace(base, asterisk=dataclasses.replace(base.asterisk, ari_url=proxy.url))
    await _hang_up_everything(base)


async def _hang_up_everything(cfg: Config) -> None:
    """A failed test may leave callers and agent legs up in Asterisk: end them so that the
    next test's agents are free (their phones' device state says NOT_INUSE again)."""
    for call in _placed:
        call.task.cancel()
    await asyncio.gather(*(c.task for c in _placed), return_exceptions=True)
    _placed.clear()
    runner.rx(cfg, "channel request hangup all")


@pytest.fixture
async def agents(instance, serve):
    cfg, passwords = instance
    a = cfg.asterisk
    phones = [AgentPhone(ext, pw, a.sip_host, a.sip_port, calls=100)
              for ext, pw in sorted(passwords.items())]
    for phone in phones:
        await phone.start()
    try:
        await serve.wait_for(lambda s: all(s["agents"][p.ext]["routable"] for p in phones),
                             what="all agents routable")
        yield phones
    finally:
        for phone in phones:
            await phone.unregister()
            await phone.stop()


# -- calls and their timestamps ------------------------------------------------------------


_numbers: set[str] = set()


def number() -> str:
    """A caller number not used before in this session (records are found by it)."""
    while (n := f"1557{secrets.randbelow(10**7):07d}") in _numbers:
        pass
    _numbers.add(n)
    return n


@dataclasses.dataclass
class Call:
    number: str
    task: asyncio.Task

    async def result(self) -> CallResult:
        return await self.task


_placed: list[Call] = []


def place(cfg: Config, hold: float) -> Call:
    a = cfg.asterisk
    caller = Caller(DID, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=(n := number()),
                    dtmf="", hold_seconds=hold, answer_timeout=40)
    _placed.append(call := Call(n, asyncio.create_task(caller.run(), name=f"caller-{n}")))
    return call


async def finished(cfg: Config, calls: list[Call], timeout: float = 60) -> list[CallRecord]:
    """Wait for every call to end; their final records, in order."""
    results = await asyncio.gather(*(c.result() for c in calls))
    for call, result in zip(calls, results):
        assert result.answered, f"caller {call.number} never answered: {result.status}"
    return [await wait_record(cfg, c.number, timeout=timeout) for c in calls]


@dataclasses.dataclass
class Latency:
    number: str
    arrival: float             # Asterisk created the channel -> record.answered_at
    queued: float              # record.enqueued_at -> record.answered_at


def latency(record: CallRecord, proxy: AriFaultProxy) -> Latency:
    assert record.answered_at and record.agent, \
        f"caller {record.caller_id} never reached an agent: {record.outcome} ({record.detail})"
    start = proxy.stasis_starts()[record.id].event["channel"]["creationtime"]
    return Latency(record.caller_id, (record.answered_at - ari_time(start)).total_seconds(),
                   (record.answered_at - record.enqueued_at).total_seconds())


def slowest(records: list[CallRecord], proxy: AriFaultProxy) -> Latency:
    measured = [latency(r, proxy) for r in records]
    return Latency("slowest", max(m.arrival for m in measured), max(m.queued for m in measured))


async def baseline(cfg: Config, proxy: AriFaultProxy) -> Latency:
    """The slowest of 5 concurrent fault-free calls (both measures)."""
    return slowest(await finished(cfg, [place(cfg, hold=3) for _ in range(OTHERS)]), proxy)


def assert_normal_pace(others: list[CallRecord], proxy: AriFaultProxy, base: Latency) -> None:
    for record in others:
        assert record.outcome == "answered", (record.caller_id, record.outcome, record.detail)
    measured = [latency(r, proxy) for r in others]
    logger.info("slowest baseline call %.2f s from arrival / %.2f s from enqueue; others %s",
                base.arrival, base.queued,
                ", ".join(f"{m.arrival:.2f}/{m.queued:.2f}" for m in measured))
    for got in measured:
        assert got.arrival <= base.arrival + SLACK and got.queued <= base.queued + SLACK, \
            (f"caller {got.number} waited {got.arrival:.2f}s from arrival, {got.queued:.2f}s "
             f"from enqueue; the slowest baseline call {base.arrival:.2f}s / {base.queued:.2f}s")


# -- the faulted call's end state -----------------------------------------------------------


def assert_safe_end(record: CallRecord, result: CallResult) -> None:
    """Served by an agent, or told and hung up by serve; never left waiting until the caller
    gave up; the record says which."""
    logger.info("faulted call %s: %s, %s (%s), agent %s, ended by %s", record.caller_id,
                record.state, record.outcome, record.detail, record.agent, result.ended_by)
    assert record.state == "ended" and record.outcome and record.detail, \
        (record.state, record.outcome, record.detail)
    served = record.outcome == "answered" and record.agent is not None and record.answered_at
    hung_up_by_serve = result.ended_by == "remote" and record.outcome not in ("answered", "abandoned")
    assert served or hung_up_by_serve, \
        (f"faulted caller {record.caller_id}: outcome {record.outcome} ({record.detail}), "
         f"call ended by {result.ended_by}")


async def assert_agents_released(serve: ServeProcess, phones: list[AgentPhone]) -> None:
    """No agent left ringing or on a call once every call has ended, and every agent leg that
    was answered was hung up (BYE) — none left on a dead line."""
    status = await serve.wait_for(
        lambda s: all(a["state"] not in ("ringing", "on_call") for a in s["agents"].values()),
        timeout=20, what="no agent ringing or on a call")
    for phone in phones:
        await asyncio.wait_for(_all_legs_closed(phone), 20)
    paused = {ext: a["pause_reason"] for ext, a in status["agents"].items() if a["state"] == "paused"}
    logger.info("agents paused at the end: %s", paused or "none")
    assert len(paused) <= 1, f"agents paused by one faulted call: {paused}"


async def _all_legs_closed(phone: AgentPhone) -> None:
    while phone.count("bye") < phone.count("answered"):
        await asyncio.sleep(0.2)


def ended_at(x: Exchange):
    return x.at + timedelta(seconds=x.seconds or 0)


# -- the tests -------------------------------------------------------------------------------


@pytest.mark.parametrize("bridge", [HOLD_PARK, CALL_BRIDGE], ids=["park", "connect"])
async def test_failed_add_channel_while_routing(cfg, proxy, serve, agents, bridge):
    """addChannel answers 500 once: into the holding bridge (park, while the agent's phone
    already rings) or into the call bridge (connect, after the agent answered)."""
    base = await baseline(cfg, proxy)
    proxy.add(Rule("POST", bridge, Fail(500), times=1))
    faulted = place(cfg, hold=15)
    hit = await proxy.wait_exchange(lambda x: x.fault is not None, timeout=30, what="the fault")
    others = [place(cfg, hold=4) for _ in range(OTHERS)]
    records = await finished(cfg, others)
    assert_normal_pace(records, proxy, base)
    result = await faulted.result()
    record = await wait_record(cfg, faulted.number, timeout=30)
    assert hit.status == 500 and len(proxy.faulted()) == 1
    assert hit.transport == "websocket", "serve's requests must ride the events socket (D26)"
    assert_safe_end(record, result)
    await assert_agents_released(serve, agents)


@pytest.mark.parametrize("after", [False, True], ids=["request-held", "answer-held"])
async def test_slow_originate_of_the_agent_leg(cfg, proxy, serve, agents, after):
    """The originate of one call's agent leg takes 2 s (held before Asterisk sees it, or
    Asterisk rings at once and its answer is held: the agent may answer before serve hears
    that the originate worked); calls arriving meanwhile do not wait for it."""
    base = await baseline(cfg, proxy)
    faulted = place(cfg, hold=10)
    proxy.add(Rule("POST", AGENT_LEG, Delay(SLOW, after=after), query=caller_query(faulted),
                   times=1))
    hit = await proxy.wait_exchange(lambda x: x.fault is not None, timeout=30, what="the slow originate")
    others = [place(cfg, hold=4) for _ in range(OTHERS)]
    records = await finished(cfg, others)
    created = [ari_time(proxy.stasis_starts()[r.id].event["channel"]["creationtime"]) for r in records]
    assert hit.seconds is not None and hit.seconds >= SLOW
    assert all(t < ended_at(hit) for t in created), \
        "the other calls must arrive while the slow originate is still in flight"
    assert_normal_pace(records, proxy, base)
    result = await faulted.result()
    assert_safe_end(await wait_record(cfg, faulted.number, timeout=30), result)
    await assert_agents_released(serve, agents)


async def test_originate_whose_answer_is_lost(cfg, proxy, serve, agents):
    """Asterisk creates one call's agent leg but the connection is cut before serve gets the
    answer: serve must not leave that leg ringing, and the call is still served.  Over the
    events socket (D26) the connection cut is that socket: serve's originate fails at once,
    unknown whether done, and serve reconnects; the other calls are placed once it is back
    (calls arriving while it is away take the degraded path: test_events_socket_cut_mid_bridge)."""
    base = await baseline(cfg, proxy)
    before = await serve.status()
    faulted = place(cfg, hold=12)
    proxy.add(Rule("POST", AGENT_LEG, Cut(forward=True), query=caller_query(faulted), times=1))
    hit = await proxy.wait_exchange(lambda x: x.fault is not None, timeout=30, what="the cut originate")
    if hit.transport == "websocket":
        await serve.wait_for(lambda s: s["ari"] == "connected"
                             and s["ari_connects"] > before["ari_connects"],
                             timeout=30, what="serve reconnected after the cut")
    others = [place(cfg, hold=4) for _ in range(OTHERS)]
    assert_normal_pace(await finished(cfg, others), proxy, base)
    result = await faulted.result()
    record = await wait_record(cfg, faulted.number, timeout=30)
    assert hit.status is None
    assert_safe_end(record, result)
    await assert_agents_released(serve, agents)


async def test_originate_that_hangs_past_the_action_deadline(cfg, proxy, serve, agents):
    """One call's agent-leg originate reaches Asterisk only after serve's action deadline
    (ACTION_DEADLINE + 2 s): serve must have moved on (the call is offered elsewhere), and the
    late leg Asterisk then creates must not be left ringing or connected to nobody."""
    base = await baseline(cfg, proxy)
    faulted = place(cfg, hold=25)
    proxy.add(Rule("POST", AGENT_LEG, Delay(ACTION_DEADLINE + 2), query=caller_query(faulted),
                   times=1))
    hit = await proxy.wait_exchange(lambda x: x.fault is not None, timeout=30, what="the hanging originate")
    others = [place(cfg, hold=4) for _ in range(OTHERS)]
    assert_normal_pace(await finished(cfg, others), proxy, base)
    result = await faulted.result()
    record = await wait_record(cfg, faulted.number, timeout=30)
    assert hit.seconds is not None and hit.seconds >= ACTION_DEADLINE
    assert_safe_end(record, result)
    await assert_agents_released(serve, agents)


def caller_query(call: Call) -> str:
    """The agent originate of one call: its caller ID is in the query."""
    return rf"(^|&)callerId={call.number}(&|$)"


@pytest.mark.parametrize("caller_leaves", [False, True], ids=["call-outlives-cut", "caller-leaves-during-cut"])
async def test_events_socket_cut_mid_bridge(cfg, proxy, serve, agents, caller_leaves):
    """The events WebSocket is cut at the moment one call is being bridged and reconnection is
    refused for a while (the call's own bridge events are lost).  3 calls already talking ride
    it out; 2 calls arriving during the outage are taken by Asterisk's degraded path (app_queue
    over the same agents) and recorded once serve is back; the faulted call is closed
    correctly whether its caller hung up during the outage or not; 5 calls placed once serve is
    back are served at the pace of the 3 talking ones."""
    talking = [place(cfg, hold=30) for _ in range(TALKING)]
    await _until_answered(cfg, talking)
    base = slowest([records_for(cfg, c.number)[-1] for c in talking], proxy)
    before = await serve.status()
    proxy.add(Rule("POST", CALL_BRIDGE, CutEvents(hold=True), times=1))
    faulted = place(cfg, hold=3 if caller_leaves else 30)
    await proxy.wait_exchange(lambda x: x.fault is not None, timeout=30, what="the bridging request")
    # serve has tried to come back and was refused: Asterisk has dropped the application
    await proxy.wait_until(lambda: proxy.refused_sockets >= 1, 20, "a refused reconnect")
    during = [place(cfg, hold=3) for _ in range(2)]
    if caller_leaves:
        await faulted.result()          # the caller hangs up while serve hears nothing
    degraded = await asyncio.gather(*(c.result() for c in during))
    proxy.allow_events()
    await serve.wait_for(lambda s: s["ari"] == "connected" and s["ari_connects"] > before["ari_connects"],
                         timeout=30, what="serve reconnected")
    after = [place(cfg, hold=4) for _ in range(OTHERS)]
    assert_normal_pace(await finished(cfg, after), proxy, base)
    assert all(r.answered and r.ended_by == "caller" for r in degraded), degraded
    for call in during:
        record = await wait_record(cfg, call.number, timeout=30)
        assert (record.outcome, record.queue) == ("answered", runner.DEGRADED_QUEUE), \
            (record.outcome, record.queue, record.detail)
        assert record.agent is not None and "degraded" in record.detail
    for record in await finished(cfg, talking):
        assert (record.outcome, record.state) == ("answered", "ended"), (record.outcome, record.detail)
    result = await faulted.result()
    record = await wait_record(cfg, faulted.number, timeout=30)
    assert record.answered_at is not None and record.agent is not None, "bridged before the cut"
    assert record.state == "ended" and record.detail
    if caller_leaves:   # serve learnt it only after reconnecting: not the caller abandoning
        assert record.outcome in ("answered", "lost"), (record.outcome, record.detail)
    else:
        assert (record.outcome, result.ended_by) == ("answered", "caller"), (record.outcome, record.detail)
    await assert_agents_released(serve, agents)


async def test_status_says_resyncing_until_the_resync_is_over(cfg, proxy, serve):
    """serve's status says "resyncing", not "connected", while its reconnect's resync runs
    (the proxy holds the resync's first GET /channels until the test has read the status): a
    caller who hung up while serve's events socket was down still counts as waiting then; the
    first status that says connected has the resync's result, the caller gone (D39).  No
    agent phone is registered: the caller waits in the queue."""
    call = place(cfg, hold=60)
    before = await serve.wait_for(lambda s: s["queues"].get(QUEUE, {}).get("waiting") == 1,
                                  what="the caller waiting")
    proxy.add(Rule("GET", r"/ari/channels", Hold(), times=1))
    await proxy.cut_events(hold=True)
    await asyncio.to_thread(runner.rx, cfg, "channel request hangup all")   # serve hears nothing
    assert (await call.result()).ended_by == "remote"
    proxy.allow_events()
    resyncing = await serve.wait_for(lambda s: s["ari"] == "resyncing"
                                     and s["ari_connects"] > before["ari_connects"],
                                     timeout=30, what="serve back and resyncing")
    assert resyncing["queues"][QUEUE]["waiting"] == 1, "the resync has not run yet"
    proxy.release()
    settled = await serve.wait_for(lambda s: s["ari"] != "resyncing", what="the resync over")
    assert settled["ari"] == "connected", settled["ari_history"]
    assert settled["queues"][QUEUE]["waiting"] == 0, settled["queues"]
    record = await wait_record(cfg, call.number, timeout=30)
    assert record.outcome == "lost" and "ARI was away" in record.detail, (record.outcome, record.detail)


async def _until_answered(cfg: Config, calls: list[Call], timeout: float = 30) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not all((rows := records_for(cfg, c.number)) and rows[-1].answered_at for c in calls):
        assert asyncio.get_running_loop().time() < deadline, "calls not all answered"
        await asyncio.sleep(0.25)


async def test_bridge_that_always_fails(cfg, proxy, serve, agents):
    """Every bridge attempt of one call fails (500): the call cannot be served, so the caller
    must be told and hung up after a few tries, not bounced from agent to agent until it gives
    up (before the fix: 71 agent legs rung, answered and dropped in 40 s, then recorded as
    abandoned); the other calls flow."""
    base = await baseline(cfg, proxy)
    faulted = place(cfg, hold=40)
    channel = await proxy.wait_until(lambda: _channel_of(proxy, faulted.number), 30, "StasisStart")
    proxy.add(Rule("POST", rf"/ari/bridges/cp-call-{re.escape(channel)}/addChannel", Fail(500)))
    others = [place(cfg, hold=4) for _ in range(OTHERS)]
    assert_normal_pace(await finished(cfg, others), proxy, base)
    result = await faulted.result()
    record = await wait_record(cfg, faulted.number, timeout=30)
    logger.info("bridge attempts that failed: %d", len(proxy.faulted()))
    assert_safe_end(record, result)
    assert (record.outcome, result.ended_by) == ("system", "remote")
    assert len(proxy.faulted()) == MAX_BRIDGE_FAILURES, "agents disturbed for a call no one can take"
    assert any(x.method == "POST" and x.path == f"/ari/channels/{channel}/play" and x.status == 201
               for x in proxy.exchanges), "the caller was not told (no apology played)"
    await assert_agents_released(serve, agents)


def _channel_of(proxy: AriFaultProxy, caller_number: str) -> str | None:
    return next((cid for cid, seen in proxy.stasis_starts().items()
                 if seen.event["channel"].get("caller", {}).get("number") == caller_number), None)


async def test_agents_who_hang_up_before_the_bridge_never_cost_the_caller(cfg, proxy, serve, instance):
    """An agent answers and hangs up at once (BYE right after the ACK), before serve's bridge
    reaches Asterisk (the proxy holds every call-bridge addChannel 1.5 s, so the leg is surely
    gone: Asterisk answers 400 "Channel not found", as under load).  It happens more often than
    MAX_BRIDGE_FAILURES: the caller is never given up (before the fix it was, after three),
    stays in line and reaches the next agent, who talks to it; the vanishing agent is available
    again, not paused."""
    _, passwords = instance
    a = cfg.asterisk
    proxy.add(Rule("POST", CALL_BRIDGE, Delay(1.5)))
    quitter = AgentPhone("3001", passwords["3001"], a.sip_host, a.sip_port, behaviour="hangup",
                         talk_seconds=0, answer_delay=0.2, calls=100)
    keeper = AgentPhone("3002", passwords["3002"], a.sip_host, a.sip_port, answer_delay=0.2, calls=10)
    await quitter.start()
    try:
        await serve.wait_for(lambda s: s["agents"]["3001"]["routable"], what="3001 routable")
        call = place(cfg, hold=60)
        await quitter.wait_for("hungup", timeout=60, count=MAX_BRIDGE_FAILURES + 1)
        await keeper.start()
        record = await wait_record(cfg, call.number, state="connected", timeout=60)
        assert record.agent == "3002" and record.outcome is None
        status = await serve.status()
        assert status["agents"]["3001"]["state"] in ("available", "ringing"), status["agents"]["3001"]
        assert status["agents"]["3001"]["pause_reason"] == ""
        failed = [x for x in proxy.exchanges if re.fullmatch(CALL_BRIDGE, x.path) and x.status == 400]
        assert len(failed) >= MAX_BRIDGE_FAILURES + 1, [x.status for x in proxy.exchanges
                                                         if re.fullmatch(CALL_BRIDGE, x.path)]
    finally:
        for phone in (quitter, keeper):
            await phone.unregister()
            await phone.stop()
