"""Flow validation errors: every problem names the node it is about and why."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FlowError:
    """One problem in a flow document; ``node_id`` None means the flow as a whole."""

    node_id: str | None
    reason: str

    def __str__(self) -> str:
        return f"{self.node_id or '(flow)'}: {self.reason}"


class FlowInvalid(ValueError):
    """A flow document that cannot run; ``errors`` lists every problem found."""

    def __init__(self, errors: list[FlowError]) -> None:
        self.errors = list(errors)
        super().__init__("; ".join(str(e) for e in self.errors) or "invalid flow")
