"""What the dispatcher reports about queues and agents (the sink is wired in server.py).

Implementations write the durable queue events (DB) and an Asterisk-style ``queue_log`` so
existing queue-report tools can read CallPilot's history.  Every method must be cheap and
must never raise into the dispatcher.
"""
from __future__ import annotations

from typing import Protocol


class QueueEventSink(Protocol):
    def enter_queue(self, call_id: str, queue: str, caller_id: str, position: int) -> None: ...
    def ring_no_answer(self, call_id: str, queue: str, agent: str, ring_ms: int) -> None: ...
    def connect(self, call_id: str, queue: str, agent: str, wait_s: float, ring_s: float,
                agent_channel: str = "") -> None: ...
    def abandon(self, call_id: str, queue: str, position: int, orig_position: int,
                wait_s: float) -> None: ...
    def complete(self, call_id: str, queue: str, agent: str, wait_s: float, talk_s: float,
                 by: str) -> None: ...   # by: "agent" | "caller"
    def exit_with_timeout(self, call_id: str, queue: str, position: int, wait_s: float,
                          overflow_to: str | None) -> None: ...
    def agent_login(self, agent: str, queues: list[str]) -> None: ...
    def agent_logout(self, agent: str, queues: list[str], logged_in_s: float) -> None: ...
    def agent_pause(self, agent: str, queues: list[str], reason: str) -> None: ...
    def agent_unpause(self, agent: str, queues: list[str]) -> None: ...


class NullEventSink:
    """For unit tests of the dispatcher that do not look at events."""

    def __getattr__(self, _name):
        return lambda *args, **kwargs: None
