"""``transfer``: send the caller to a queue, an agent's phone, or an allow-listed outside route.

Exactly one destination, always a fixed name in the flow (never built from variables, so
nothing a caller keys can choose where the call goes: toll-fraud rule):

* ``{"queue": "billing"}`` - hand the call to the ACD, as ``enqueue`` does.
* ``{"agent": "1002", "fallback": id, "timeout": 20}`` - ring that agent's phone and bridge
  the caller with it; busy, no answer or unreachable -> ``fallback``.
* ``{"route": "fraud_desk", "fallback": id, "timeout": 30}`` - an outbound route the admin
  configured (``[routes]``: a fixed number on a configured trunk); the flow only names it.
  An unknown route -> ``fallback``.

A bridged transfer ends the flow when either side hangs up (outcome ``transfer``).  Drivers
without the ``connect`` capability (FastAGI) go to ``fallback``.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.fields import Fields, Prompt
from ivr.outcome import Outcome

logger = logging.getLogger(__name__)

DESTINATIONS = ("queue", "agent", "route")
NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
EXTENSION = re.compile(r"[0-9]{2,10}")


@dataclass
class TransferNode(Node):
    type = "transfer"
    id: str
    kind: str                 # queue | agent | route
    name: str
    fallback: str | None = None
    timeout: int = 20
    prompt: Prompt | None = None

    @classmethod
    def parse(cls, f: Fields) -> TransferNode:
        kind, name = _destination(f)
        fallback = f.target("fallback", required=kind != "queue")
        return cls(f.node_id, kind, name, fallback, f.integer("timeout", 20, minimum=5, maximum=120),
                   f.prompt("prompt"))

    def targets(self) -> list[str]:
        return [self.fallback] if self.fallback else []

    def prompts(self) -> list[Prompt]:
        return [self.prompt] if self.prompt else []

    async def run(self, ctx: CallContext) -> Step:
        if self.prompt:
            await ctx.driver.play(await ctx.sounds(self.prompt), barge_in=False)
        if self.kind == "queue":
            return Outcome("enqueue", queue=self.name, reason="transfer")
        endpoint = self._endpoint(ctx)
        connect = getattr(ctx.driver, "connect", None)
        if endpoint is None or not callable(connect):
            logger.warning("call %s: transfer %s %s not possible here: fallback %s",
                           ctx.driver.call_id, self.kind, self.name, self.fallback)
            return self.fallback or ""
        result = await connect(endpoint, timeout=self.timeout, label=f"{self.kind} {self.name}")
        ctx.variables["transfer_result"] = result
        if result == "completed":
            return Outcome("transfer", target=f"{self.kind}:{self.name}", reason=result)
        return self.fallback or ""

    def _endpoint(self, ctx: CallContext) -> str | None:
        if self.kind == "agent":
            return f"PJSIP/{self.name}"
        routes = getattr(ctx.services, "outbound_route", None)
        return routes(self.name) if callable(routes) else None


def _destination(f: Fields) -> tuple[str, str]:
    given = [k for k in DESTINATIONS if f.has(k)]
    if len(given) != 1:
        f.error(f"needs exactly one of {', '.join(DESTINATIONS)}")
        return "queue", ""
    kind = given[0]
    value = f.text(kind, required=True) or ""
    pattern = EXTENSION if kind == "agent" else NAME
    if not pattern.fullmatch(value):   # also refuses {variables}: the destination is fixed
        f.error(f"{kind} {value!r} must be a fixed "
                f"{'extension (digits)' if kind == 'agent' else 'name'}, not built from input")
    return kind, value
