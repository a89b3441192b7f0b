"""(c) serve's real Dispatcher at 1,000 agents x 10,000 waiting calls: one freed agent, and
the event loop's health under a stream of events.

The policy workload of policy_bench.py (same seed) is loaded into an ``acd.dispatcher.
Dispatcher`` through its one door (``adopt``), with a fake CallControl (no Asterisk: this is
the policy-level cost serve pays per event) and fake call records.

* ``dispatcher_freed_agent``: after an agent's hang-up (``agent_leg_gone``: the call ends,
  the agent is freed), one dispatcher pass (``_dispatch_once``: agent views, router, the
  offer's bookkeeping) and ``routing.next_wakeup()``, timed with ``perf_counter``.  The ring
  task the offer starts runs outside the timing.  ``dispatcher_hangup_and_pass``: the same
  with the hang-up's own handling included.
* ``dispatcher_freed_agent_full``: the same, the dispatcher's routing swapped for the full
  recomputation it replaced (``acd.routing.assign`` + ``next_wakeup`` over every call and
  agent per pass), in the same run and state.
* ``loop_lag``: a 10 ms ticker (``asyncio.sleep(0.01)``) records how late it wakes while the
  dispatcher's own loop runs and events stream in: calls entering and abandoning (the line
  stays at ~10,000), agent phones answering 20-60 ms after the ring and hanging up after
  1-4 s of talk, so about 1,000 / 2.5 s = 400 agents free up per second.  ``loop_lag_full``
  is the same stream, shorter, on the full recomputation.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from acd import routing
from acd.actions import Bridged
from acd.agents import AgentRoster, LiveAgent
from acd.dispatcher import Dispatcher
from acd.model import AgentState
from acd.queues import QueueBook, QueueSettings
from acd.state import CallEntry, CallState
from bench.acd.policy_bench import NOW, QUEUES, SEED, _pct, make_calls, workload
from callpilot.infra.db.call_vocabulary import RoutingTicket

logger = logging.getLogger(__name__)


class FakeRecords:
    def post(self, call_id: str, **fields: Any) -> None:
        pass

    async def update(self, call_id: str, **fields: Any) -> None:
        pass


class PhoneFloor:
    """CallControl whose agent phones answer after ``answer`` seconds and hang up after a
    talk time drawn from ``talk`` (both None: they ring and never answer)."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.dispatcher: Dispatcher | None = None
        self.answer: tuple[float, float] | None = None
        self.talk: tuple[float, float] = (1.0, 4.0)
        self.tasks: set[asyncio.Task] = set()
        self.rung = 0

    async def park(self, call_id, queue, moh_class="default"):
        return True

    async def unpark(self, call_id, queue):
        return True

    async def ring(self, call_id, endpoint, channel_id, *, timeout, caller_id):
        self.rung += 1
        if self.answer is not None:
            task = asyncio.create_task(self._phone(call_id, channel_id))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        return True

    async def _phone(self, call_id: str, channel_id: str) -> None:
        assert self.dispatcher is not None and self.answer is not None
        await asyncio.sleep(self.rng.uniform(*self.answer))
        await self.dispatcher.agent_answered(channel_id, call_id)
        await asyncio.sleep(self.rng.uniform(*self.talk))
        await self.dispatcher.agent_leg_gone(channel_id)

    async def prepare_bridge(self, call_id):
        return None

    async def connect(self, call_id, agent_channel, queue):
        return Bridged.CONNECTED

    async def release(self, call_id, *channels):
        return True

    async def hangup(self, channel_id):
        return True

    async def cancel_ring(self, channel_id):
        return True

    async def play(self, channel_id, uri):
        return True

    def stop(self) -> None:
        for task in list(self.tasks):
            task.cancel()


class FullRouting:
    """The routing the dispatcher had before the incremental router: every pass recomputes
    ``acd.routing.assign`` and ``next_wakeup`` over all waiting calls and all agents."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.d = dispatcher
        self._wakeup: float | None = None

    def call_changed(self, call_id: str) -> None:
        pass

    def handed_back(self, call_id: str, extension: str) -> None:
        pass

    def next_wakeup(self) -> float | None:
        return self._wakeup

    def offers(self, calls, now: float, virtual=None) -> list[tuple[str, str]]:
        """``virtual`` (due callbacks, D18) is ignored: the bench floor has no callbacks."""
        waiting = [c for c in calls.values() if c.state is CallState.QUEUED]
        agents = self.d.roster.agents.values()
        pairs = routing.assign(waiting, agents, now, bands=self.d.bands)
        self._wakeup = routing.next_wakeup(waiting, agents, now, bands=self.d.bands)
        return pairs


def _queues() -> QueueBook:
    return QueueBook({q: QueueSettings(name=q, announce_frequency=0) for q in QUEUES})


async def build(n_agents: int, n_calls: int) -> tuple[Dispatcher, PhoneFloor]:
    """The busy floor (nobody available) with ``n_calls`` waiting, entered through adopt."""
    w = workload(n_agents, n_calls)
    roster = AgentRoster()
    floor = PhoneFloor(random.Random(SEED + 5))
    d = Dispatcher(floor, roster, FakeRecords(), ring_timeout=15, wrapup_seconds=0, queues=_queues())
    floor.dispatcher = d
    now_mono = d.clock.monotonic()
    for view in w.agents_none:
        roster.add(LiveAgent(extension=view.id, queues=view.queues, skills=dict(view.skills),
                             age_band=view.age_band, languages=view.languages, state=view.state,
                             device_state="NOT_INUSE", idle_since=now_mono - (NOW - view.idle_since)))
    for call in w.calls:
        await d.adopt(_entry(d, call, NOW - call.enqueued_at))
    await d.settle()
    return d, floor


def _entry(d: Dispatcher, call, waited: float) -> CallEntry:
    ticket = RoutingTicket(queue=call.queue, priority=call.priority, skills=dict(call.required_skills),
                           attributes=dict(call.attributes))
    return CallEntry(call.id, "", "", ticket, enqueued_at=d.clock.utcnow() - timedelta(seconds=waited))


async def freed_agents(d: Dispatcher, reps: int, budget: float) -> tuple[list[float], list[float]]:
    """Free one random on-call agent at a time: a connected call ends (the hang-up), then
    one pass (views, routing, offer) and the next wake-up.  Times of the pass, and of the
    hang-up plus the pass."""
    rng = random.Random(SEED + 6)
    on_call = [a for a in d.roster.agents.values() if a.state is AgentState.ON_CALL]
    passes: list[float] = []
    totals: list[float] = []
    deadline = time.perf_counter() + budget
    for i in range(reps):
        on_call = [a for a in on_call if a.state is AgentState.ON_CALL]   # a freed agent left
        if not on_call:                        # without an offer (small floors) stays free
            break
        agent = rng.choice(on_call)
        channel = _talk_to(d, agent)
        start = time.perf_counter()
        await d.agent_leg_gone(channel)            # the call ends, the agent is freed
        freed = time.perf_counter()
        await d._dispatch_once()
        d.routing.next_wakeup()
        end = time.perf_counter()
        passes.append(end - freed)
        totals.append(end - start)
        await d.settle()
        _answer_offer(d, agent)                    # the offered call connects: agent on call again
        if i >= 2 and time.perf_counter() > deadline:
            break
    return passes, totals


def _talk_to(d: Dispatcher, agent: LiveAgent) -> str:
    """Give an on-call agent a connected call of its own (outside the timing)."""
    if agent.call_id in d.calls and d.calls[agent.call_id].agent_channel:
        return d.calls[agent.call_id].agent_channel or ""
    from acd.state import LiveCall
    call = LiveCall(id=f"talk-{agent.extension}", caller_id="", did="", state=CallState.CONNECTED,
                    queue=next(iter(agent.queues)), agent=agent.extension,
                    agent_channel=f"leg-{agent.extension}")
    d.calls[call.id] = call
    d._talking[call.agent_channel] = call.id
    agent.call_id = call.id
    return call.agent_channel or ""


def _answer_offer(d: Dispatcher, agent: LiveAgent) -> None:
    call = d.calls.get(agent.call_id or "")
    if call is None or call.state is not CallState.RINGING:
        return
    d._ringing.pop(call.agent_channel or "", None)
    d._connected(call, call.agent_channel or "")


async def loop_lag(d: Dispatcher, floor: PhoneFloor, seconds: float, enter_rate: float) -> dict:
    """The dispatcher's loop running, phones answering and hanging up, callers entering and
    abandoning at ``enter_rate`` each; a 10 ms ticker's lateness."""
    rng = random.Random(SEED + 7)
    floor.answer = (0.02, 0.06)
    lags: list[float] = []
    counts = {"entered": 0, "abandoned": 0, "rung_before": floor.rung}
    d.start()
    stop = asyncio.get_running_loop().time() + seconds
    ticker = asyncio.create_task(_ticker(lags, stop))
    for task in [asyncio.create_task(_free_busy_agents(d, floor, rng, stop)),
                 asyncio.create_task(_callers(d, rng, stop, enter_rate, counts))]:
        await task
    await ticker
    floor.stop()
    await d.stop()
    return {"lags": lags, "rung": floor.rung - counts.pop("rung_before"), **counts}


async def _ticker(lags: list[float], stop: float) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < stop:
        expected = loop.time() + 0.01
        await asyncio.sleep(0.01)
        lags.append(max(0.0, loop.time() - expected))


async def _free_busy_agents(d: Dispatcher, floor: PhoneFloor, rng: random.Random, stop: float) -> None:
    """The agents on call at the start hang up over the talk-time range (the floor turns over)."""
    loop = asyncio.get_running_loop()
    on_call = [a for a in d.roster.agents.values() if a.state is AgentState.ON_CALL]
    rng.shuffle(on_call)
    span = floor.talk[1]
    for i, agent in enumerate(on_call):
        due = loop.time() + span / len(on_call)
        if loop.time() >= stop:
            return
        if agent.state is AgentState.ON_CALL:
            await d.agent_leg_gone(_talk_to(d, agent))
        await asyncio.sleep(max(0.0, due - loop.time()))


async def _callers(d: Dispatcher, rng: random.Random, stop: float, rate: float, counts: dict) -> None:
    loop = asyncio.get_running_loop()
    fresh = iter(make_calls(random.Random(SEED + 8), int(rate * (stop - loop.time())) + 10))
    leavers = [cid for cid, c in d.calls.items() if c.state is CallState.QUEUED]   # once, before
    rng.shuffle(leavers)
    entering: set[asyncio.Task] = set()
    while loop.time() < stop:
        call = next(fresh)
        counts["entered"] += 1
        task = asyncio.create_task(d.adopt(_entry(d, dataclasses.replace(call, id="n" + call.id), 0.0)))
        entering.add(task)
        task.add_done_callback(entering.discard)
        while leavers:                             # a caller who waited gives up
            call_id = leavers.pop()
            if call_id in d.calls and d.calls[call_id].state is CallState.QUEUED:
                counts["abandoned"] += 1
                await d.caller_gone(call_id)
                break
        await asyncio.sleep(1.0 / rate)


def _lag_figures(name: str, result: dict) -> dict[str, float]:
    lags = result["lags"]
    return {f"{name}.p50_ms": _pct(lags, 0.5) * 1000, f"{name}.p99_ms": _pct(lags, 0.99) * 1000,
            f"{name}.max_ms": max(lags) * 1000, f"{name}.ticks": len(lags),
            f"{name}.offers": result["rung"], f"{name}.entered": result["entered"],
            f"{name}.abandoned": result["abandoned"]}


def _time_figures(name: str, times: list[float]) -> dict[str, float]:
    return {f"{name}.p50_ms": _pct(times, 0.5) * 1000, f"{name}.p99_ms": _pct(times, 0.99) * 1000,
            f"{name}.runs": len(times)}


async def _run(quick: bool, log: Callable[[str], None], n_agents: int, n_calls: int,
               seconds: float) -> dict[str, float]:
    scale = 0.3 if quick else 1.0
    started = time.perf_counter()
    d, floor = await build(n_agents, n_calls)
    log(f"dispatcher: {n_calls} calls adopted, {n_agents} agents, in {time.perf_counter() - started:.1f} s")
    passes, totals = await freed_agents(d, int(400 * scale), 4 * scale)
    figures = {**_time_figures("dispatcher_freed_agent", passes),
               **_time_figures("dispatcher_hangup_and_pass", totals)}
    incremental = d.routing
    d.routing = FullRouting(d)                     # same dispatcher, same state: the old pass
    passes, totals = await freed_agents(d, int(15 * scale) or 3, 6 * scale)
    figures.update(_time_figures("dispatcher_freed_agent_full", passes))
    figures["dispatcher_freed_agent.ratio_p50"] = (figures["dispatcher_freed_agent_full.p50_ms"]
                                                   / figures["dispatcher_freed_agent.p50_ms"])
    d.routing = incremental
    for agent in d.roster.agents.values():         # the router re-reads every agent and call
        d.roster.touch(agent.extension)
    for call_id in d.calls:
        incremental.call_changed(call_id)
    await d._dispatch_once()
    await d.settle()
    figures.update(_lag_figures("loop_lag", await loop_lag(d, floor, seconds * scale, 100.0)))
    log(f"dispatcher: incremental stream done at {time.perf_counter() - started:.1f} s")
    d, floor = await build(n_agents, n_calls)
    d.routing = FullRouting(d)
    figures.update(_lag_figures("loop_lag_full", await loop_lag(d, floor, max(3.0, seconds * scale / 3), 100.0)))
    figures["loop_lag.ratio_p99"] = figures["loop_lag_full.p99_ms"] / max(figures["loop_lag.p99_ms"], 1e-3)
    log(f"dispatcher: measured in {time.perf_counter() - started:.1f} s")
    return figures


def run(quick: bool = False, log: Callable[[str], None] = print, *, agents: int = 1000,
        calls: int = 10_000, seconds: float = 15.0) -> dict[str, float]:
    logging.getLogger("acd").setLevel(logging.WARNING)    # a log line per transition is not the cost measured
    return asyncio.run(_run(quick, log, agents, calls, seconds))


if __name__ == "__main__":
    import sys
    figures = run(quick="--quick" in sys.argv)
    for key, value in figures.items():
        print(f"{key:45s} {value:10.3f}")
