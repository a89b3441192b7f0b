"""Run a flow for one call through a :class:`~ivr.driver.CallDriver`.

``FlowRunner(prompts).run(flow, driver, variables)`` walks the nodes from ``flow.start``
until a node returns an :class:`~ivr.outcome.Outcome`.  The runner itself ends the call only
for a ``hangup`` node; ``enqueue`` and ``transfer`` outcomes are carried out by the caller of
``run`` (the Stasis app or the FastAGI handler).  A caller hanging up
(:class:`~ivr.driver.CallerHangup`) ends the flow with ``Outcome("hangup", reason="caller")``;
any other failure is logged and the caller is sent to the safe queue (``fallback_queue``).
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from callpilot.infra.messages import MessageCatalogue, builtin_messages
from ivr import schema
from ivr.driver import CallDriver, CallerHangup
from ivr.nodes.base import CallContext
from ivr.outcome import Outcome
from ivr.schema import Flow
from ivr.tts import PromptCache

logger = logging.getLogger(__name__)

__all__ = ["FlowResult", "FlowRunner", "Outcome", "Resume", "collect_prompts", "prerender"]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


@dataclass(frozen=True)
class Resume:
    """Where a call re-adopted after a restart of serve takes up its flow: the node it was in,
    with the path and inputs it had so far (so its record stays complete)."""

    node: str
    path: list[str] = field(default_factory=list)
    inputs: list[dict[str, Any]] = field(default_factory=list)


Progress = Callable[[CallContext], None]


@dataclass
class FlowResult:
    outcome: Outcome
    path: list[str]                       # node ids in visiting order (repeats included)
    inputs: list[dict[str, Any]]          # {node, kind: dtmf|speech|timeout, value, confidence}
    started_at: datetime
    ended_at: datetime
    flow_name: str = ""
    flow_version: int | None = None
    variables: dict[str, Any] = field(default_factory=dict)

    def journey(self) -> dict[str, Any]:
        """JSON-ready record of the call's way through the IVR."""
        return {"flow": self.flow_name, "version": self.flow_version, "path": list(self.path),
                "inputs": list(self.inputs), "started_at": self.started_at.isoformat(),
                "ended_at": self.ended_at.isoformat(), "outcome": self.outcome.kind,
                "queue": self.outcome.queue, "reason": self.outcome.reason}


class FlowRunner:
    def __init__(self, prompts: PromptCache, *, fallback_queue: str = "general",
                 max_steps: int = 200, services: Any = None, speech: bool = True,
                 speech_languages: set[str] | frozenset[str] | None = None,
                 clock: Callable[[], datetime] = utc_now,
                 messages: MessageCatalogue | None = None) -> None:
        """``messages``: the system's catalogue, for ``{"message": key}`` prompts (the
        built-in one when not given)."""
        self.prompts = prompts
        self.messages = messages or builtin_messages()
        self.fallback_queue = fallback_queue
        self.max_steps = max_steps
        self.services = services
        self.speech = speech
        self.speech_languages = (frozenset(x.lower() for x in speech_languages)
                                 if speech_languages is not None else None)
        self.clock = clock

    async def prerender(self, flow: Flow | dict[str, Any]) -> int:
        return await prerender(self.prompts, _as_flow(flow), messages=self.messages)

    async def collect(self, flows: list[Flow]) -> int:
        return await collect_prompts(self.prompts, flows, self.messages)

    async def run(self, flow: Flow | dict[str, Any], driver: CallDriver,
                  variables: dict[str, Any] | None = None, *, resume: Resume | None = None,
                  on_progress: Progress | None = None) -> FlowResult:
        """``on_progress(ctx)`` runs at every node entered and every input given (before a
        node masks a secret input: defer the reading, e.g. with ``loop.call_soon``)."""
        flow = _as_flow(flow)
        ctx = self._context(flow, driver, variables or {})
        if on_progress is not None:
            ctx.on_progress = lambda: on_progress(ctx)
        start = flow.start
        if resume is not None and resume.node in flow.nodes:
            start = resume.node
            ctx.path.extend(resume.path)
            ctx.inputs.extend(resume.inputs)
        started = self.clock()
        logger.info("call %s from %s to %s enters flow %s v%s at %s", driver.call_id,
                    driver.caller_id, driver.did, flow.name, flow.version, start)
        outcome = await self._walk(flow, ctx, start)
        result = FlowResult(outcome, ctx.path, ctx.inputs, started, self.clock(), flow.name,
                            flow.version, ctx.variables)
        logger.info("call %s leaves flow %s: %s %s via %s", driver.call_id, flow.name,
                    outcome.kind, outcome.queue or outcome.target or "", ctx.path)
        return result

    def _context(self, flow: Flow, driver: CallDriver, variables: dict[str, Any]) -> CallContext:
        values = {"call_id": driver.call_id, "caller_id": driver.caller_id, "did": driver.did}
        values.update(variables)
        language = values.get("language") or flow.language or self.prompts.default_voice
        values["language"] = language
        return CallContext(driver, self.prompts, values, language, self.clock,
                           services=self.services, speech=self.speech,
                           speech_languages=self.speech_languages,
                           timezone=flow.timezone or "UTC", messages=self.messages)

    async def _walk(self, flow: Flow, ctx: CallContext, start: str) -> Outcome:
        try:
            return await self._steps(flow, ctx, start)
        except CallerHangup:
            logger.info("call %s: caller hung up in node %s", ctx.driver.call_id,
                        ctx.path[-1] if ctx.path else None)
            return Outcome("hangup", reason="caller")
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("call %s: flow %s failed in node %s; sending to %s",
                             ctx.driver.call_id, flow.name, ctx.path[-1] if ctx.path else None,
                             self.fallback_queue)
            return Outcome("enqueue", queue=self.fallback_queue, reason="error")

    async def _steps(self, flow: Flow, ctx: CallContext, start: str) -> Outcome:
        node_id = start
        for _ in range(self.max_steps):
            ctx.path.append(node_id)
            if ctx.on_progress is not None:
                ctx.on_progress()
            step = await flow.nodes[node_id].run(ctx)
            if isinstance(step, Outcome):
                return step
            node_id = step
        logger.error("call %s: flow %s exceeded %d steps", ctx.driver.call_id, flow.name,
                     self.max_steps)
        return Outcome("enqueue", queue=self.fallback_queue, reason="max_steps")


def _as_flow(flow: Flow | dict[str, Any]) -> Flow:
    return flow if isinstance(flow, Flow) else schema.parse(flow)


# Bounds of one flow version's prompt rendering: the rest is synthesised when a call meets it.
PRERENDER_MAX_SECONDS = 120.0
PROMPTS_MAX_BYTES = 512 * 1024 * 1024


async def prerender(prompts: PromptCache, flow: Flow, *, max_seconds: float = PRERENDER_MAX_SECONDS,
                    max_bytes: int = PROMPTS_MAX_BYTES, messages: MessageCatalogue | None = None) -> int:
    """Render the static prompts of ``flow`` (off the event loop), for at most
    ``max_seconds`` and while the prompt directory holds less than ``max_bytes``; returns
    how many are ready.  What is left is rendered by the first call that needs it."""
    pairs = flow.static_prompts(messages)
    deadline = time.monotonic() + max_seconds
    done = 0
    for text, language in pairs:
        if time.monotonic() > deadline or await asyncio.to_thread(prompts.usage_bytes) > max_bytes:
            logger.warning("flow %s: %d of %d prompts rendered, stopped at the bound (%.0f s, "
                           "%d MB); calls render the rest when they meet them", flow.name, done,
                           len(pairs), max_seconds, max_bytes // 2**20)
            break
        await prompts.render_async(text, language)
        done += 1
    return done


async def collect_prompts(prompts: PromptCache, flows: list[Flow],
                          messages: MessageCatalogue | None = None) -> int:
    """Delete rendered prompts that none of ``flows`` uses (older than the cache's grace
    period, so prompts of calls in progress and dynamic ones just rendered stay)."""
    keep = {prompts.path_for(text, language) for flow in flows
            for text, language in flow.static_prompts(messages)}
    return await asyncio.to_thread(prompts.collect, keep)
