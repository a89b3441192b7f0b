"""The words both domains write into a call record: its state, its outcome, its routing ticket,
and where it stands in the IVR.

ivr opens and ends records (a caller who hangs up in the menu), acd moves them through the
queue; neither may import the other, so the vocabulary they share lives here, next to the
records it describes.  The enums are ``str`` enums: a member is stored as its value and a value
read back compares equal to its member (``record.state == CallState.QUEUED``).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from typing import Any


class CallState(enum.StrEnum):
    """Where a call stands (``call_records.state``).  The ACD's state machine over these
    values (which move is legal) is ``acd.state``."""

    IVR = "ivr"
    QUEUED = "queued"
    RINGING = "ringing"        # an agent leg is being offered the call
    CONNECTED = "connected"
    ENDED = "ended"


OPEN_STATES = (CallState.IVR, CallState.QUEUED, CallState.RINGING, CallState.CONNECTED)


class CallOutcome(enum.StrEnum):
    """How a call ended (``call_records.outcome``), decided by who hung up and why."""

    ANSWERED = "answered"              # talked to an agent
    ABANDONED = "abandoned"            # the caller hung up while waiting or ringing
    IVR_HANGUP = "ivr_hangup"          # the caller hung up in the IVR
    IVR_COMPLETED = "ivr_completed"    # the flow ended the call itself
    LOST = "lost"                      # the channel vanished while serve was away
    SYSTEM = "system"                  # Asterisk or serve ended it (shutdown, fault), not the caller
    FAILED = "failed"
    CLOSED = "closed"                  # the queue was closed (opening hours): told so, hung up
    TRANSFERRED = "transferred"        # the flow bridged the caller to an agent phone or a route


@dataclass(frozen=True)
class RoutingTicket:
    """What the flow chose for the ACD: queue, priority, required skills (skill -> minimum
    level), relaxation steps in the ACD's JSON form (None: the queue's own steps) and caller
    attributes.  Stored as JSON in ``call_records.ticket`` so it survives the FastAGI handoff
    (the dialplan passes only the queue name) and a restart of serve."""

    queue: str
    priority: int = 0
    skills: dict[str, int] = field(default_factory=dict)
    steps: list[dict[str, Any]] | None = None
    attributes: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"queue": self.queue, "priority": self.priority, "skills": dict(self.skills),
                "steps": None if self.steps is None else [dict(s) for s in self.steps],
                "attributes": dict(self.attributes)}

    @classmethod
    def from_json(cls, data: Any) -> RoutingTicket | None:
        """The ticket stored in a record, or None for none (or one this code cannot read)."""
        if not isinstance(data, dict) or not isinstance(data.get("queue"), str):
            return None
        priority = data.get("priority", 0)
        return cls(queue=data["queue"], priority=priority if isinstance(priority, int) else 0,
                   skills=dict(data.get("skills") or {}), steps=data.get("steps") or None,
                   attributes=dict(data.get("attributes") or {}))

    def to_queue(self, queue: str) -> RoutingTicket:
        """The same ticket aimed at another queue (whose own steps then apply)."""
        return replace(self, queue=queue, steps=None)


@dataclass(frozen=True)
class IvrPlace:
    """Where a caller stands in its flow (``call_records.ivr_place``): the flow version it
    runs, the node it is in, the nodes and answers so far and the call's variables, so a serve
    restarted mid-menu resumes that node and the record's path stays complete."""

    flow: str
    version: int | None
    node: str
    path: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)
    variables: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"flow": self.flow, "version": self.version, "node": self.node,
                "path": list(self.path), "inputs": [dict(i) for i in self.inputs],
                "variables": _json_safe(self.variables)}

    @classmethod
    def from_json(cls, data: Any) -> IvrPlace | None:
        if not isinstance(data, dict) or not isinstance(data.get("node"), str):
            return None
        version = data.get("version")
        return cls(str(data.get("flow") or ""), version if isinstance(version, int) else None,
                   data["node"], list(data.get("path") or []), list(data.get("inputs") or []),
                   dict(data.get("variables") or {}))


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """Only what JSON keeps as it is (a date or an object would not come back the same)."""
    scalars = (str, int, float, bool, type(None))
    return {k: v for k, v in values.items() if isinstance(k, str) and isinstance(v, scalars)}
