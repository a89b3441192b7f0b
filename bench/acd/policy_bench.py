"""(a) Pure routing policy: decisions per second and decision time at contact-centre scale.

Workload (seeded, so every run decides the same thing): 1,000 agents and 10,000 waiting
calls over 10 queues.

* Agents: one home queue (100 per queue) plus 0-2 extra queues; proficiency 1-5 in each
  queue's skill (mostly 3); an age band (2 % unknown); English, 30 % also Korean; idle
  times spread over 10 minutes.  A dispatch pass sees a realistic busy floor: 10 %
  available, the rest on call, in wrap-up, paused or logged out.
* Calls: queues weighted 30/20/12/10/8/6/5/4/3/2 %; priority 0 (85 %), 1 (12 %), 2 (3 %);
  the default relaxation steps (same band, adjacent band, any skill, anyone) with their own
  Step objects per call, as tickets parsed one by one would have; waiting 0-120 s, so
  every step is active for some calls; 5 % of callers have no known age band (the band
  steps are skipped for them); 10 % carry a hard minimum (queue skill >= 2).

Measured (``time.perf_counter``, warm, median of repeated runs):

* ``pass_busy``: ``assign()`` over all calls with 10 % of agents available.
* ``pass_all_free``: ``assign()`` when every logged-in agent is available (a shift start).
* ``freed_agent``: one agent freed on a fully busy floor; ``assign()`` returns its call.
  This is what the dispatcher pays every time an agent hangs up.
* ``dispatcher_pass``: the same single freed agent through ``acd.routing`` (live objects
  -> views -> ``assign`` and ``next_wakeup``), i.e. one pass of serve's dispatcher loop.
* ``freed_agent_incremental``: the same freed agent as one event of
  :class:`acd.policy.incremental.IncrementalRouter` holding the 10,000 calls (``set_agent``
  plus ``next_wakeup``); the offer is handed back outside the timing.  Also the calls it
  examined per event (a work count, steadier than time).
* ``call_enters_incremental``: one new call entering the busy floor (10 % available).

decisions/s = (call, agent) pairs decided / wall time of the passes that decided them.
"""
from __future__ import annotations

import dataclasses
import gc
import logging
import random
import statistics
import time
from collections.abc import Callable

from acd import policy
from acd.model import DEFAULT_AGE_BANDS, AgentState, AgentView, CallView, default_steps

logger = logging.getLogger(__name__)

SEED = 20261124
NOW = 100_000.0
QUEUES = tuple(f"q{i}" for i in range(10))
QUEUE_WEIGHTS = (30, 20, 12, 10, 8, 6, 5, 4, 3, 2)
BANDS = DEFAULT_AGE_BANDS.labels
BUSY_STATES = (AgentState.ON_CALL,) * 7 + (AgentState.WRAP_UP, AgentState.PAUSED, AgentState.LOGGED_OUT)


@dataclasses.dataclass
class Workload:
    calls: list[CallView]
    agents_busy: list[AgentView]       # 10 % available
    agents_free: list[AgentView]       # every logged-in agent available
    agents_none: list[AgentView]       # nobody available (freed-agent base)


def make_agents(rng: random.Random, n: int, available: float) -> list[AgentView]:
    agents = []
    for i in range(n):
        queues = {QUEUES[i % len(QUEUES)]} | set(rng.sample(QUEUES, rng.choice((0, 1, 1, 2))))
        skills = {q: rng.choice((1, 2, 3, 3, 3, 4, 4, 5)) for q in sorted(queues)}
        state = AgentState.AVAILABLE if rng.random() < available else rng.choice(BUSY_STATES)
        band = rng.choice(BANDS) if rng.random() > 0.02 else None
        langs = {"en"} | ({"ko"} if rng.random() < 0.3 else set())
        agents.append(AgentView(f"a{i:04d}", frozenset(queues), skills, band, frozenset(langs), state,
                                NOW - rng.uniform(0, 600), state is not AgentState.LOGGED_OUT))
    return agents


def with_state(agents: list[AgentView], pick: Callable[[AgentView], AgentState]) -> list[AgentView]:
    return [dataclasses.replace(a, state=(s := pick(a)), logged_in=s is not AgentState.LOGGED_OUT)
            for a in agents]


def make_calls(rng: random.Random, n: int) -> list[CallView]:
    calls = []
    for i in range(n):
        queue = rng.choices(QUEUES, QUEUE_WEIGHTS)[0]
        attributes = {"age_band": rng.choice(BANDS) if rng.random() > 0.05 else None,
                      "language": rng.choice(("en", "en", "ko"))}
        calls.append(CallView(f"c{i:05d}", queue, rng.choices((0, 1, 2), (85, 12, 3))[0],
                              NOW - rng.uniform(0, 120), attributes, default_steps(queue),
                              {queue: 2} if rng.random() < 0.1 else {}))
    return calls


def workload(n_agents: int = 1000, n_calls: int = 10_000) -> Workload:
    rng = random.Random(SEED)
    busy = make_agents(rng, n_agents, available=0.10)
    free = with_state(busy, lambda a: a.state if a.state is AgentState.LOGGED_OUT else AgentState.AVAILABLE)
    none = with_state(busy, lambda a: AgentState.ON_CALL if a.state is AgentState.AVAILABLE else a.state)
    return Workload(make_calls(rng, n_calls), busy, free, none)


def _time(fn: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _series(fn: Callable[[object], object], reps: int, budget: float,
            prepare: Callable[[int], object] = lambda i: None) -> tuple[list[float], list[object]]:
    """Time ``fn(prepare(i))`` ``reps`` times (fewer if ``budget`` seconds run out; at least
    3); ``prepare`` runs outside the timing.  The garbage collector stays on: a real pass
    pays for it too."""
    fn(prepare(-1))                          # warm caches and the allocator
    gc.collect()
    times, results, deadline = [], [], time.perf_counter() + budget
    for i in range(reps):
        arg = prepare(i)
        elapsed, result = _time(lambda: fn(arg))
        del arg
        times.append(elapsed)
        results.append(result)
        if i >= 2 and time.perf_counter() > deadline:
            break
    return times, results


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _summary(name: str, times: list[float], pairs: list[int]) -> dict[str, float]:
    total = sum(times)
    return {f"{name}.p50_ms": _pct(times, 0.5) * 1000, f"{name}.p99_ms": _pct(times, 0.99) * 1000,
            f"{name}.pairs": statistics.median(pairs), f"{name}.decisions_per_s": sum(pairs) / total,
            f"{name}.runs": len(times)}


def _freed(base: list[AgentView], rng: random.Random) -> Callable[[int], list[AgentView]]:
    """A floor where only one (random, logged-in) agent is available."""
    candidates = [i for i, a in enumerate(base) if a.logged_in]
    picks = [rng.choice(candidates) for _ in range(1000)]

    def floor(i: int) -> list[AgentView]:
        j = picks[i % len(picks)]
        agents = list(base)
        agents[j] = dataclasses.replace(base[j], state=AgentState.AVAILABLE)
        return agents
    return floor


def run(quick: bool = False, log: Callable[[str], None] = print) -> dict[str, float]:
    scale = 0.3 if quick else 1.0
    started = time.perf_counter()
    w = workload()
    log(f"policy: workload built in {time.perf_counter() - started:.1f} s "
        f"({len(w.calls)} calls, {len(w.agents_busy)} agents, "
        f"{sum(a.available for a in w.agents_busy)} available in the busy floor)")
    figures: dict[str, float] = {}

    times, res = _series(lambda _: policy.assign(w.calls, w.agents_busy, NOW), int(40 * scale), 4 * scale)
    figures.update(_summary("pass_busy", times, [len(r) for r in res]))

    times, res = _series(lambda _: policy.assign(w.calls, w.agents_free, NOW), int(12 * scale) or 3, 4 * scale)
    figures.update(_summary("pass_all_free", times, [len(r) for r in res]))

    floor = _freed(w.agents_none, random.Random(SEED + 1))
    times, res = _series(lambda agents: policy.assign(w.calls, agents, NOW), int(200 * scale),
                         4 * scale, prepare=floor)
    figures.update(_summary("freed_agent", times, [len(r) for r in res]))

    figures.update(_dispatcher_pass(w, floor, int(15 * scale) or 3, 5 * scale))
    figures.update(_incremental(w, int(2000 * scale), 4 * scale))
    log(f"policy: measured in {time.perf_counter() - started:.1f} s")
    return figures


def _dispatcher_pass(w: Workload, floor: Callable[[int], list[AgentView]], reps: int,
                     budget: float) -> dict[str, float]:
    """serve's dispatcher: LiveCall/LiveAgent -> views -> assign + next_wakeup, per kick."""
    try:
        from acd import routing
        from acd.agents import LiveAgent
        from acd.state import CallState, LiveCall
    except ImportError as exc:   # the adapter moved: report what still can be measured
        logger.warning("dispatcher pass not measured: %s", exc)
        return {}
    calls = []
    for c in w.calls:
        live = LiveCall(id=c.id, caller_id="", did="", state=CallState.QUEUED, queue=c.queue,
                        priority=c.priority, enqueued_mono=c.enqueued_at,
                        attributes=dict(c.attributes), skills=dict(c.required_skills), steps=c.steps)
        calls.append(live)

    def live_agents(views: list[AgentView]) -> list[LiveAgent]:
        return [LiveAgent(extension=a.id, queues=a.queues, skills=dict(a.skills), age_band=a.age_band,
                          languages=a.languages, state=a.state, device_state="NOT_INUSE",
                          idle_since=a.idle_since) for a in views]

    def one_pass(agents: list[LiveAgent]) -> int:
        pairs = routing.assign(calls, agents, NOW)
        routing.next_wakeup(calls, agents, NOW)
        return len(pairs)

    try:
        times, res = _series(one_pass, reps, budget, prepare=lambda i: live_agents(floor(i)))
    except TypeError as exc:
        logger.warning("dispatcher pass not measured (acd.routing API changed?): %s", exc)
        return {}
    return _summary("dispatcher_pass", times, list(res))


def _incremental(w: Workload, reps: int, budget: float) -> dict[str, float]:
    """One freed agent, and one entering call, as events of the incremental router."""
    from acd.policy.incremental import IncrementalRouter
    router = IncrementalRouter()
    for agent in w.agents_none:
        router.set_agent(agent, NOW)
    for call in w.calls:
        router.add_call(call, NOW)
    rng = random.Random(SEED + 2)
    logged_in = [a for a in w.agents_none if a.logged_in]
    calls = {c.id: c for c in w.calls}
    touched: list[int] = []

    def free_one(agent: AgentView) -> int:
        before = router.touched
        pairs = router.set_agent(dataclasses.replace(agent, state=AgentState.AVAILABLE), NOW)
        router.next_wakeup()
        touched.append(router.touched - before)
        for call_id, _ in pairs:          # hand back outside the figure's meaning: see below
            undo.append(call_id)
        return len(pairs)

    undo: list[str] = []

    def prepare(i: int) -> AgentView:
        while undo:                       # the ring "failed": call back in line, agent busy
            router.add_call(calls[undo.pop()], NOW)
        for agent in logged_in:
            if router.agents[agent.id].state is not agent.state:
                router.set_agent(agent, NOW)
        return rng.choice(logged_in)

    times, res = _series(free_one, reps, budget, prepare=prepare)
    figures = _summary("freed_agent_incremental", times, list(res))
    figures["freed_agent_incremental.calls_examined_max"] = max(touched)
    prepare(-1)

    busy = IncrementalRouter()
    for agent in w.agents_busy:
        busy.set_agent(agent, NOW)
    for call in w.calls:                  # 10,000 waiting; the free agents take some at once
        busy.add_call(call, NOW)
    entering = iter(make_calls(random.Random(SEED + 3), reps + 1))

    def enter(call: CallView) -> int:
        pairs = busy.add_call(dataclasses.replace(call, id="n" + call.id), NOW)
        busy.next_wakeup()
        return len(pairs)

    times, res = _series(enter, reps, budget, prepare=lambda i: next(entering))
    figures.update(_summary("call_enters_incremental", times, list(res)))
    return figures
