"""serve's Prometheus metrics: the snapshot collector, the routing-latency histograms fed by
the dispatcher's hooks (fake call control, clock under the test's control), the loop-lag
histogram, and the HTTP endpoint on the event loop."""
from __future__ import annotations

import asyncio

import aiohttp
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from acd.agents import AgentRoster
from acd.dispatcher import Dispatcher
from acd.hooks import CallHooks
from acd.model import AgentState
from acd.queues import QueueBook, QueueSettings
from callpilot.app.serve_metrics import RoutingLatency, ServeMetrics, SnapshotCollector
from callpilot.infra.loop_health import LoopLag
from callpilot.infra.metrics_http import MetricsHttp
from testkit.isolated import free_port
from tests.unit.test_dispatcher import FakeControl, FakeRecords, agent, enqueue
from tests.unit.test_dispatcher_incremental import FakeClock

SNAPSHOT = {
    "ari": "connected", "ami": "disconnected", "ari_connects": 3,
    "ari_rest": {"transport": "websocket", "requests": {"websocket": 17}},
    "call_states": {"ivr": 2, "queued": 2, "ringing": 1},
    "loop_lag": {"worst_ms": 42.0},
    "queues": {"billing": {"waiting": 2, "agents_available": 0}, "cards": {"waiting": 0, "agents_available": 1}},
    "waiting": [{"id": "c1", "queue": "billing", "waited": 12.5}, {"id": "c2", "queue": "billing", "waited": 3.0}],
    "callbacks": {"pending": 4, "attempts": {}},
    "agents": {"1001": {"state": "on_call"}, "1002": {"state": "on_call"}, "1003": {"state": "paused"}},
    "outbound": {"fraud": {"ringing": 2, "message": 1}},
}


def _registry(snapshot) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snapshot))
    return registry


def test_snapshot_gauges():
    r = _registry(SNAPSHOT)
    value = r.get_sample_value
    assert value("callpilot_calls_in_progress", {"state": "queued"}) == 2
    assert value("callpilot_calls_in_progress", {"state": "ivr"}) == 2
    assert value("callpilot_calls_in_progress", {"state": "connected"}) == 0
    assert value("callpilot_queue_waiting_calls", {"queue": "billing"}) == 2
    assert value("callpilot_queue_waiting_calls", {"queue": "cards"}) == 0
    assert value("callpilot_queue_longest_wait_seconds", {"queue": "billing"}) == 12.5
    assert value("callpilot_queue_longest_wait_seconds", {"queue": "cards"}) == 0
    assert value("callpilot_queue_agents_available", {"queue": "cards"}) == 1
    assert value("callpilot_queue_agents_available", {"queue": "billing"}) == 0
    assert value("callpilot_agents", {"state": "on_call"}) == 2
    assert value("callpilot_agents", {"state": "available"}) == 0
    assert value("callpilot_callbacks_pending") == 4
    assert value("callpilot_outbound_calls_active", {"campaign": "fraud"}) == 3
    assert value("callpilot_event_loop_lag_worst_seconds") == 0.042
    assert value("callpilot_ari_connects_total") == 3
    assert value("callpilot_ari_requests_total", {"transport": "websocket"}) == 17
    assert value("callpilot_ari_requests_total", {"transport": "http"}) == 0


def test_link_states_are_one_hot_over_the_enum():
    r = _registry(SNAPSHOT)
    ari = {s: r.get_sample_value("callpilot_ari_connection_state", {"state": s})
           for s in ("idle", "connecting", "resyncing", "connected", "backoff", "closed")}
    assert ari == {"idle": 0, "connecting": 0, "resyncing": 0, "connected": 1, "backoff": 0, "closed": 0}
    assert r.get_sample_value("callpilot_ami_connection_state", {"state": "disconnected"}) == 1
    assert r.get_sample_value("callpilot_ami_connection_state", {"state": "logged_in"}) == 0


def test_an_empty_snapshot_still_answers():
    r = _registry({})
    assert r.get_sample_value("callpilot_callbacks_pending") == 0
    assert r.get_sample_value("callpilot_agents", {"state": "available"}) == 0


def _build(latency: RoutingLatency, clock: FakeClock, *agents):
    roster = AgentRoster()
    for a in agents:
        roster.add(a)
    hooks = CallHooks(offered=latency.offered, originated=latency.originated)
    queues = QueueBook({"q": QueueSettings(name="q", announce_frequency=0, steps=())})
    return Dispatcher(FakeControl(), roster, FakeRecords(), ring_timeout=5, wrapup_seconds=0,
                      queues=queues, clock=clock, hooks=hooks)


def _histogram(registry, name):
    return (registry.get_sample_value(f"{name}_count"), registry.get_sample_value(f"{name}_sum"))


async def test_routing_latency_from_the_later_of_call_and_agent():
    registry, clock = CollectorRegistry(), FakeClock()
    latency = RoutingLatency(registry)
    busy = agent("1")
    busy.move(AgentState.PAUSED, "test")
    d = _build(latency, clock, busy)
    await enqueue(d, "a")                              # t=1000: nobody free, the call waits
    assert _histogram(registry, "callpilot_routing_decision_seconds") == (0, 0)
    clock.now = 1004.0
    d.agent_command("1", "unpause")                    # the agent is free at t=1004
    clock.now = 1004.25
    await d._dispatch_once()                           # the pass that decides, 0.25 s later
    await d.settle()
    assert _histogram(registry, "callpilot_routing_decision_seconds") == (1, 0.25)
    assert _histogram(registry, "callpilot_routing_enqueue_to_originate_seconds") == (1, 4.25)


async def test_only_first_offers_are_measured():
    registry, clock = CollectorRegistry(), FakeClock()
    latency = RoutingLatency(registry)
    one = agent("1")
    one.idle_since = 900.0
    d = _build(latency, clock, one)
    await enqueue(d, "a")
    assert _histogram(registry, "callpilot_routing_decision_seconds") == (1, 0)
    d.calls["a"].attempts = 2                          # a later offer of the same call
    latency.offered(d.calls["a"], one, 1010.0)
    latency.originated(d.calls["a"], 1010.0)
    assert _histogram(registry, "callpilot_routing_decision_seconds")[0] == 1
    assert _histogram(registry, "callpilot_routing_enqueue_to_originate_seconds")[0] == 1


def test_a_failing_hook_never_raises():
    latency = RoutingLatency(CollectorRegistry())
    latency.offered(object(), object(), 1.0)           # no attributes at all
    latency.originated(object(), 1.0)


async def test_loop_lag_ticks_feed_the_histogram():
    metrics = ServeMetrics(lambda: {})
    lag = LoopLag(interval=0.01)
    lag.observers.append(metrics.loop_lag.observe)
    lag.start()
    while lag.ticks < 3:
        await asyncio.sleep(0.01)
    lag.stop()
    count = metrics.registry.get_sample_value("callpilot_event_loop_lag_seconds_count")
    assert count is not None and count >= 3 and count == lag.ticks


async def test_endpoint_serves_the_registry_on_the_loop():
    metrics = ServeMetrics(lambda: SNAPSHOT)
    metrics.routing.decision.observe(0.003)
    http = MetricsHttp("127.0.0.1", free_port(), metrics.registry)
    assert await http.start()
    try:
        async with aiohttp.ClientSession() as s:
            async with s.get(f"http://127.0.0.1:{http.port}/metrics") as resp:
                assert resp.status == 200 and resp.content_type == "text/plain"
                text = await resp.text()
    finally:
        await http.stop()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert families["callpilot_routing_decision_seconds"].type == "histogram"
    waiting = {s.labels["queue"]: s.value for s in families["callpilot_queue_waiting_calls"].samples}
    assert waiting == {"billing": 2, "cards": 0}


async def test_a_busy_port_is_logged_not_fatal(caplog):
    metrics = ServeMetrics(lambda: {})
    first = MetricsHttp("127.0.0.1", free_port(), metrics.registry)
    assert await first.start()
    second = MetricsHttp("127.0.0.1", first.port, metrics.registry)
    try:
        assert not await second.start()
        assert "not started" in caplog.text
    finally:
        await first.stop()
    assert not await MetricsHttp("127.0.0.1", 0, metrics.registry).start()   # 0 = off


def test_a_phone_becoming_idle_is_when_the_agent_became_free():
    registry, now = CollectorRegistry(), [50.0]
    latency = RoutingLatency(registry, clock=lambda: now[0])
    call = type("Call", (), {"attempts": 1, "enqueued_mono": 10.0})()
    one = type("Agent", (), {"extension": "1001", "idle_since": 5.0})()
    latency.device_changed("PJSIP/1001", "UNAVAILABLE")
    latency.device_changed("PJSIP/1001", "NOT_INUSE")          # registered at t=50
    now[0] = 60.0
    latency.device_changed("PJSIP/1001", "NOT_INUSE")          # a repeat keeps the first time
    latency.offered(call, one, 50.125)
    assert _histogram(registry, "callpilot_routing_decision_seconds") == (1, 0.125)
    latency.device_changed("PJSIP/1001", "INUSE")
    latency.offered(call, one, 70.0)                            # back to entry / availability
    assert _histogram(registry, "callpilot_routing_decision_seconds") == (2, 60.125)
