"""serve's Prometheus metrics: gauges read from serve's own snapshot at scrape time (the one
``callpilot status`` prints), and histograms fed by thin hooks (the ACD's offer and
originate, the loop-lag ticker).  No domain imports this module; the composition root
passes the snapshot function in and plugs the hooks.

Names follow the Prometheus conventions: ``callpilot_`` prefix, base units (``_seconds``),
``_total`` for counters.  Exposed by :class:`callpilot.infra.metrics_http.MetricsHttp`.
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from callpilot.infra.asterisk.ami import AmiState
from callpilot.infra.asterisk.ari import AriState
from ivr.speech.loading import SpeechState

logger = logging.getLogger(__name__)

CALL_STATES = ("ivr", "queued", "ringing", "connected")
AGENT_STATES = ("logged_out", "available", "ringing", "on_call", "wrap_up", "paused")
# a routing decision: sub-millisecond when idle, tens of ms under a burst (docs/decisions.md D17)
DECISION_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# queue entry -> the agent's phone dialled: includes the wait for a free agent
ORIGINATE_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
IDLE_DEVICE_STATE = "NOT_INUSE"     # what AMI reports for a registered phone not in a call
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

Snapshot = Callable[[], Mapping[str, Any]]


class SnapshotCollector:
    """Gauges from serve's snapshot, taken when scraped (on the event loop)."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        yield from snapshot_families(self.snapshot())


def snapshot_families(live: Mapping[str, Any]) -> Iterator[Any]:
    """Every gauge read from a snapshot of serve: serve's own endpoint and the admin web's
    ``/metrics`` (which reads the snapshot over serve's status socket) both build them here,
    so the names are the same wherever they are scraped (docs/metrics.md)."""
    yield calls_by_state(live)
    yield from queue_families(live)
    yield agents_by_state(live)
    yield from single_gauges(live)
    yield from link_states(live)
    yield from speech_states(live)


def _gauge(name: str, doc: str, value: float) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc)
    family.add_metric([], value)
    return family


def calls_by_state(live: Mapping[str, Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily("callpilot_calls_in_progress", "calls in serve by state", labels=["state"])
    counts = live.get("call_states", {})
    for state in sorted(set(CALL_STATES) | set(counts)):
        family.add_metric([state], counts.get(state, 0))
    return family


def queue_families(live: Mapping[str, Any]) -> Iterator[GaugeMetricFamily]:
    waiting = GaugeMetricFamily("callpilot_queue_waiting_calls", "calls waiting in the queue (callers in line)",
                                labels=["queue"])
    longest = GaugeMetricFamily("callpilot_queue_longest_wait_seconds",
                                "the longest current wait in the queue (0 when nobody waits)", labels=["queue"])
    available = GaugeMetricFamily("callpilot_queue_agents_available",
                                  "the queue's agents available with an idle phone (routable)", labels=["queue"])
    waits: dict[str, list[float]] = {}
    for call in live.get("waiting", []):
        waits.setdefault(call.get("queue") or "", []).append(float(call.get("waited", 0.0)))
    queues = live.get("queues", {})
    for name in sorted(set(queues) | set(waits)):
        waiting.add_metric([name], len(waits.get(name, [])))
        longest.add_metric([name], max(waits.get(name, [0.0])))
        available.add_metric([name], queues.get(name, {}).get("agents_available", 0))
    yield waiting
    yield longest
    yield available


def agents_by_state(live: Mapping[str, Any]) -> GaugeMetricFamily:
    family = GaugeMetricFamily("callpilot_agents", "agents by ACD state", labels=["state"])
    counts = Counter(str(a.get("state")) for a in live.get("agents", {}).values())
    for state in sorted(set(AGENT_STATES) | set(counts)):
        family.add_metric([state], counts.get(state, 0))
    return family


def single_gauges(live: Mapping[str, Any]) -> Iterator[Any]:
    yield _gauge("callpilot_callbacks_pending", "callbacks waiting to be placed",
                 live.get("callbacks", {}).get("pending", 0))
    outbound = GaugeMetricFamily("callpilot_outbound_calls_active", "live campaign calls", labels=["campaign"])
    for campaign, phases in sorted(live.get("outbound", {}).items()):
        outbound.add_metric([campaign], sum(phases.values()))
    yield outbound
    yield _gauge("callpilot_event_loop_lag_worst_seconds", "the event loop's worst lateness since start",
                 live.get("loop_lag", {}).get("worst_ms", 0.0) / 1000)
    connects = CounterMetricFamily("callpilot_ari_connects", "ARI event socket (re)connections since start")
    connects.add_metric([], live.get("ari_connects", 0))
    yield connects
    requests = CounterMetricFamily("callpilot_ari_requests", "ARI REST requests since start, by transport "
                                   "(the events WebSocket or HTTP: docs/decisions.md D26)", labels=["transport"])
    for transport in ("websocket", "http"):
        requests.add_metric([transport], live.get("ari_rest", {}).get("requests", {}).get(transport, 0))
    yield requests


def link_states(live: Mapping[str, Any]) -> Iterator[GaugeMetricFamily]:
    """One series per state of the link's enum, 1 for the current one (the Enum pattern)."""
    for link, states in (("ari", AriState), ("ami", AmiState)):
        family = GaugeMetricFamily(f"callpilot_{link}_connection_state",
                                   f"serve's {link.upper()} connection: 1 for its current state", labels=["state"])
        current = live.get(link)
        for state in states:
            family.add_metric([state.value], 1 if state.value == current else 0)
        yield family


def speech_states(live: Mapping[str, Any]) -> Iterator[GaugeMetricFamily]:
    """Per language, 1 for the current state of its speech model's load, and the seconds the
    load took (D40)."""
    state = GaugeMetricFamily("callpilot_speech_model_state",
                              "speech model load per language: 1 for its current state", labels=["language", "state"])
    seconds = GaugeMetricFamily("callpilot_speech_model_load_seconds",
                                "how long the language's speech model took to load (or to fail)", labels=["language"])
    for language, shown in sorted(live.get("speech", {}).items()):
        for value in SpeechState:
            state.add_metric([language, value.value], 1 if shown.get("state") == value.value else 0)
        if "seconds" in shown:
            seconds.add_metric([language], shown["seconds"])
    yield state
    yield seconds


class RoutingLatency:
    """Histograms fed by the ACD's hooks (``CallHooks.offered`` / ``originated``).

    *decision*: from the latest of the call's queue entry, the agent's becoming available and
    its phone's becoming idle (AMI device state, :meth:`device_changed`) to the offer, for a
    call's first offer (a call back in line after a ring failed keeps its entry time, so its
    later offers are not a routing decision's latency).
    *enqueue -> originate*: from queue entry to the first dial of an agent's phone sent to
    Asterisk (includes the wait for a free agent)."""

    def __init__(self, registry: CollectorRegistry, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock                 # the dispatcher's monotonic clock (the same in serve)
        self.phone_idle_since: dict[str, float] = {}
        self.decision = Histogram(
            "callpilot_routing_decision_seconds",
            "call routable or agent free -> offer decided (first offers)",
            buckets=DECISION_BUCKETS, registry=registry)
        self.to_originate = Histogram(
            "callpilot_routing_enqueue_to_originate_seconds",
            "queue entry -> first agent originate sent", buckets=ORIGINATE_BUCKETS, registry=registry)

    def device_changed(self, device: str, state: str) -> None:
        """AMI device state of an agent's phone: when it became idle (free to ring)."""
        extension = device.split("/", 1)[-1]
        if state == IDLE_DEVICE_STATE:
            self.phone_idle_since.setdefault(extension, self.clock())
        else:
            self.phone_idle_since.pop(extension, None)

    def offered(self, call: Any, agent: Any, now: float) -> None:
        try:
            if call.attempts == 1:
                ready = max(call.enqueued_mono, agent.idle_since,
                            self.phone_idle_since.get(agent.extension, float("-inf")))
                self.decision.observe(max(0.0, now - ready))
        except Exception:       # a metric must never break an offer
            logger.exception("routing decision metric failed")

    def originated(self, call: Any, now: float) -> None:
        try:
            if call.attempts == 1:
                self.to_originate.observe(max(0.0, now - call.enqueued_mono))
        except Exception:
            logger.exception("originate metric failed")


class ServeMetrics:
    """The registry serve exposes: snapshot gauges, routing histograms, loop lag."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(SnapshotCollector(snapshot))
        self.routing = RoutingLatency(self.registry)
        self.loop_lag = Histogram("callpilot_event_loop_lag_seconds",
                                  "how late the event loop's ticker woke", buckets=LOOP_LAG_BUCKETS,
                                  registry=self.registry)
