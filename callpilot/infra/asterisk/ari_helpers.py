"""ARI actions that tolerate 404 (the object is already gone), and deterministic IDs.

Asterisk object IDs derive from domain IDs so that a restarted ``serve`` finds them again:
the caller's channel id is the call id; everything else hangs off it.
"""
from __future__ import annotations

import logging
from typing import Any

from callpilot.infra.asterisk.ari import AriClient, AriError, AriNotFound

logger = logging.getLogger(__name__)


def holding_bridge_id(queue: str) -> str:
    return f"cp-hold-{queue}"


def call_bridge_id(call_id: str) -> str:
    return f"cp-call-{call_id}"


def agent_channel_id(call_id: str, attempt: int) -> str:
    return f"cp-agent-{call_id}-{attempt}"


def call_id_of_agent_channel(channel_id: str) -> str | None:
    """Inverse of agent_channel_id: 'cp-agent-<call>-<n>' -> '<call>'."""
    if not channel_id.startswith("cp-agent-"):
        return None
    return channel_id[len("cp-agent-"):].rsplit("-", 1)[0]


def in_stasis(channel: dict[str, Any]) -> bool:
    """Is a channel (as GET /channels lists it) in a Stasis application, rather than running
    a dialplan application such as AGI()?  Unknown (no app name given): assumed in Stasis."""
    app = (channel.get("dialplan") or {}).get("app_name")
    return not app or app == "Stasis"


def stasis_args(channel: dict[str, Any], app: str) -> list[str] | None:
    """The arguments a channel (as GET /channels lists it) entered Stasis application ``app``
    with, e.g. ``["enqueue", "billing"]`` for ``Stasis(callpilot,enqueue,billing)``; None when
    it is elsewhere or Asterisk did not say (``dialplan.app_data``)."""
    dialplan = channel.get("dialplan") or {}
    if dialplan.get("app_name") != "Stasis" or not dialplan.get("app_data"):
        return None
    name, *args = str(dialplan["app_data"]).split(",")
    return args if name.strip() == app else None


async def _tolerant(coro, what: str) -> Any:
    try:
        return await coro
    except AriNotFound:
        logger.debug("%s: already gone", what)
        return None


async def safe_hangup(ari: AriClient, channel_id: str, reason: str = "normal") -> None:
    await _tolerant(ari.delete(f"/channels/{channel_id}", reason=reason), f"hangup {channel_id}")


async def safe_bridge_destroy(ari: AriClient, bridge_id: str) -> None:
    await _tolerant(ari.delete(f"/bridges/{bridge_id}"), f"destroy bridge {bridge_id}")


async def safe_remove_from_bridge(ari: AriClient, bridge_id: str, channel_id: str) -> None:
    try:
        await ari.post(f"/bridges/{bridge_id}/removeChannel", channel=channel_id)
    except AriNotFound:
        pass
    except AriError as exc:  # 422: channel not in that bridge
        if exc.status != 422:
            raise


async def safe_stop_playback(ari: AriClient, playback_id: str) -> None:
    await _tolerant(ari.delete(f"/playbacks/{playback_id}"), f"stop playback {playback_id}")


async def safe_answer(ari: AriClient, channel_id: str) -> bool:
    """Answer; False when the caller already hung up."""
    try:
        await ari.post(f"/channels/{channel_id}/answer")
        return True
    except AriNotFound:
        return False


async def ensure_bridge(ari: AriClient, bridge_id: str, kind: str, name: str = "") -> dict:
    """Create (or fetch, when it survived a restart) a bridge with a known id."""
    try:
        return await ari.post(f"/bridges/{bridge_id}", type=kind, name=name or bridge_id)
    except AriError as exc:
        if exc.status != 409:  # 409: it already exists, e.g. made before serve restarted
            raise
        return await ari.get(f"/bridges/{bridge_id}")


async def channel_exists(ari: AriClient, channel_id: str) -> bool:
    try:
        await ari.get(f"/channels/{channel_id}")
        return True
    except AriNotFound:
        return False
