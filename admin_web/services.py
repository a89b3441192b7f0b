"""What the admin web needs from the rest of CallPilot, passed in by the composition root.

``admin_web`` imports neither ``ivr`` nor ``acd`` (the domains are independent) nor
``callpilot.infra.asterisk`` (the web never drives Asterisk).  ``callpilot.app.web`` builds a
:class:`WebServices` from the IVR's flow store, the TTS prompt cache and serve's status socket
and hands it to :func:`admin_web.app.create_app`.  Tests pass fakes or the real parts.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable, Protocol, Sequence


class FlowProblem(Protocol):
    """One validation problem; ``node_id`` None means the flow as a whole."""

    node_id: str | None
    reason: str


class FlowVersionInfo(Protocol):
    version: int
    published_at: datetime
    published_by: str
    comment: str
    rollback_of: int | None


class FlowStore(Protocol):
    """The versioned flow store (drafts + immutable published versions).

    Missing flows, drafts or versions raise ``KeyError``; publishing an invalid draft raises
    ``ValueError`` whose ``errors`` attribute lists the :class:`FlowProblem` s.
    """

    def names(self) -> list[str]: ...
    def latest_versions(self) -> dict[str, int]: ...
    def versions(self, name: str) -> Sequence[FlowVersionInfo]: ...
    def draft(self, name: str) -> dict[str, Any]: ...
    def document(self, name: str, version: int) -> dict[str, Any]: ...
    def save_draft(self, name: str, document: dict[str, Any], author: str = "") -> Sequence[FlowProblem]: ...
    def publish(self, name: str, author: str = "", comment: str = "") -> int: ...
    def rollback(self, name: str, version: int, author: str = "", comment: str = "") -> int: ...


class Campaigns(Protocol):
    """Outbound campaigns (``outbound``): errors are ``ValueError`` with a message for people."""

    def report(self, name: str) -> dict[str, Any]: ...
    def set_state(self, name: str, action: str) -> str: ...       # start|pause|resume|finish -> state
    def import_csv(self, name: str, text: str, region: str) -> dict[str, Any]: ...   # {imported, rejected, errors}
    # a new campaign (state draft) from the form's fields, checked like ``campaigns create``
    def create(self, name: str, template: str, fields: dict[str, Any]) -> int: ...
    # the message as a contact hears it, with sample values; the template's variables
    def preview(self, template: str, sample: dict[str, str], keys: dict[str, str]) -> tuple[str, list[str]]: ...
    def defaults(self) -> dict[str, Any]: ...    # the form's initial values


@dataclass
class WebServices:
    """Everything optional: a page whose service is missing says so instead of failing."""

    flows: FlowStore | None = None
    # flow document -> its problems (the same validation serve and the CLI apply)
    validate_flow: Callable[[dict[str, Any]], Sequence[FlowProblem]] | None = None
    # (text, language or None) -> a WAV file of the prompt as callers hear it
    render_prompt: Callable[[str, str | None], Path] | None = None
    # serve's live snapshot (``callpilot status --json``), None when serve is down
    live_status: Callable[[], dict[str, Any] | None] | None = None
    # this node's serve alone (its status socket), where live_status may be the whole center's
    local_status: Callable[[], dict[str, Any] | None] | None = None
    # a snapshot -> serve's gauges as Prometheus metric families, the very ones serve's own
    # endpoint builds (``callpilot.app.serve_metrics.snapshot_families``): one set of names
    serve_gauges: Callable[[dict[str, Any]], Iterable[Any]] | None = None
    # node types the IVR knows (the editor has a form for each)
    node_types: Sequence[str] = ()
    # a queue's routing steps (JSON list) -> None if the ACD accepts them, else why not
    check_queue_steps: Callable[[Any], str | None] | None = None
    # per-queue statistics since a time (offered, answered, service_level, asa, abandon_rate, ...)
    queue_stats: Callable[[datetime], dict[str, dict[str, Any]]] | None = None
    # (start, end, interval minutes) -> {"intervals": [{start, queue, offered, answered, abandoned,
    # timed_out, service_level, asa, aht, ...}], "agents": [{agent, answered, talk_s, aht, asa, queues}],
    # "nps": {queue: {nps, answers, promoters, detractors, agents: {agent: {...}}}}}
    queue_report: Callable[[datetime, datetime, int], dict[str, list[dict[str, Any]]]] | None = None
    # Asterisk-format queue_log file written by serve (export)
    queue_log_path: Path | None = None
    # outbound campaigns: results, start/pause, contact import
    campaigns: Campaigns | None = None
    # tell serve the web changed something it holds in memory ("queues"); False if serve is down
    notify_serve: Callable[[str], bool] | None = None
    # birth year -> the ACD's age band label ("35-44")
    age_band: Callable[[int], str] | None = None
    # (extension, action login|logout|pause|unpause, reason) -> (HTTP status, body) from serve
    agent_command: Callable[[str, str, str], tuple[int, dict[str, Any]]] | None = None
