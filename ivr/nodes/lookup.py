"""``lookup``: fetch data about the caller into variables.

``{"type": "lookup", "source": "customer", "key": "caller_id", "next": id, "not_found": id,
"error": id}`` reads the customers table: sets ``customer_known``, ``customer_name``,
``birth_year``, ``age``, ``age_band``, ``segment``, ``customer_language``.

``{"type": "lookup", "source": "webhook", "url": "https://...", "method": "POST",
"timeout": 2, "params": {"account": "{account}"}, "into": "crm", ...}`` stores the JSON
answer under ``variables[into]`` (templates use ``{crm.balance}``).  A timeout or failure
goes to ``error`` (default: ``not_found``, default: ``next``).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from ivr import template
from ivr.nodes.base import CallContext, Node, Step
from ivr.nodes.fields import Fields
from ivr.services import ServiceError

logger = logging.getLogger(__name__)

SOURCES = ("customer", "webhook")


@dataclass
class LookupNode(Node):
    type = "lookup"
    id: str
    source: str
    next: str
    not_found: str | None = None
    error: str | None = None
    key: str = "caller_id"
    url: str | None = None
    method: str = "POST"
    timeout: float = 2.0
    params: dict[str, Any] = field(default_factory=dict)
    into: str = "lookup"

    @classmethod
    def parse(cls, f: Fields) -> LookupNode:
        source = f.text("source", required=True) or "customer"
        if source not in SOURCES:
            f.error(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
        node = cls(f.node_id, source, f.target("next") or "", f.target("not_found", required=False),
                   f.target("error", required=False), f.text("key", default="caller_id") or "caller_id",
                   f.text("url"), (f.text("method", default="POST") or "POST").upper(),
                   f.number("timeout", 2.0, minimum=0.1), f.mapping("params"),
                   f.text("into", default="lookup") or "lookup")
        _check_webhook(f, node)
        return node

    def targets(self) -> list[str]:
        return [t for t in (self.next, self.not_found, self.error) if t]

    async def run(self, ctx: CallContext) -> Step:
        try:
            found = await (self._customer(ctx) if self.source == "customer" else self._webhook(ctx))
        except ServiceError as exc:
            logger.warning("call %s: lookup %s failed: %s", ctx.driver.call_id, self.id, exc)
            return self.error or self.not_found or self.next
        return self.next if found else (self.not_found or self.next)

    async def _customer(self, ctx: CallContext) -> bool:
        phone = str(template.lookup(ctx.variables, self.key) or "")
        profile = await ctx.services.customer(phone) if ctx.services else None
        ctx.variables["customer_known"] = profile is not None
        if profile is None:
            return False
        ctx.variables.update(profile_variables(profile, ctx.now().year, ctx.services.age_band))
        return True

    async def _webhook(self, ctx: CallContext) -> bool:
        if ctx.services is None:
            raise ServiceError("no services configured")
        payload = {"call_id": ctx.driver.call_id, "caller_id": ctx.driver.caller_id,
                   "did": ctx.driver.did}
        payload.update({k: ctx.format(v) if isinstance(v, str) else v for k, v in self.params.items()})
        data = await ctx.services.webhook(ctx.format(self.url or ""), method=self.method,
                                          payload=payload, timeout=self.timeout)
        ctx.variables[self.into] = data
        return bool(data)


def profile_variables(profile: dict[str, Any], year: int, age_band: Any) -> dict[str, Any]:
    """Call variables from a customer profile (pure)."""
    values = {"customer_name": profile.get("name") or "", "segment": profile.get("segment"),
              "customer_language": profile.get("language")}
    birth_year = profile.get("birth_year")
    if isinstance(birth_year, int) and 0 < year - birth_year < 130:
        values.update(birth_year=birth_year, age=year - birth_year, age_band=age_band(birth_year, year))
    return values


def _check_webhook(f: Fields, node: LookupNode) -> None:
    if node.source != "webhook":
        if node.url is not None:
            f.error("url is only for source webhook")
        return
    if not node.url or not node.url.startswith(("http://", "https://")):
        f.error("webhook needs an http:// or https:// url")
    if node.method not in ("GET", "POST"):
        f.error(f"method must be GET or POST, got {node.method!r}")
