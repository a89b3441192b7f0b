"""ARI REST requests over the events WebSocket (Asterisk 20.14+, 21.9+, 22.4+).

Why: over HTTP every request pays aiohttp's request machinery (headers, a response object,
a connection from the pool) and a loopback round trip on a connection of its own; that was
about 30 % of serve's main thread per IVR call (docs/decisions.md D21).  On the events socket
a request is one text frame out and one back, matched by ``request_id``; many are in flight at
once (pipelined).

The protocol (Asterisk's ``res/ari/ari_websocket_requests.c``): the client sends
``{"type": "RESTRequest", "request_id", "method", "uri" (no leading /),
"query_strings": [{"name", "value"}], "content_type", "message_body"}`` and Asterisk answers
``{"type": "RESTResponse", "request_id", "transaction_id", "status_code", "reason_phrase",
"uri", "content_type", "message_body"}`` on the same socket, between the events.

A request whose socket goes down before its answer fails at once with :class:`WsLinkLost`
(an ``aiohttp.ClientConnectionError``, as a cut HTTP connection would); nobody knows whether
Asterisk did it (docs/decisions.md D26).

Frames are encoded and decoded with orjson (:func:`encode`, :func:`decode`, also used for the
events): a StasisStart frame decodes in a third of ``json``'s time and a request frame
encodes in a tenth (docs/decisions.md D35).  A request's deadline is one timer on its own
future, not ``asyncio.wait_for``'s second future and callbacks.
"""
from __future__ import annotations

import asyncio
import enum
import itertools
import logging
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson

logger = logging.getLogger(__name__)

RESPONSE_TYPE = "RESTResponse"


def decode(text: str | bytes) -> Any:
    """A JSON text (an event, an answer, a body) as Python values, like ``json.loads``."""
    return orjson.loads(text)


def encode(value: Any) -> str:
    """Compact JSON text of ``value`` (str keys; no NaN: ARI has neither)."""
    return orjson.dumps(value).decode()


class RestTransport(enum.Enum):
    """How REST requests reach Asterisk (config ``asterisk.ari_rest_transport``)."""
    AUTO = "auto"              # the events socket when it is up and Asterisk answers on it
    WEBSOCKET = "websocket"    # the events socket only (requests wait for it while it is down)
    HTTP = "http"              # one HTTP request each (Asterisk before 22.4)


class WsLinkLost(aiohttp.ClientConnectionError):
    """The events socket went down (or was never up) with the request unanswered."""


@dataclass(frozen=True)
class WsReply:
    status: int
    reason: str
    body: str


class WsRestChannel:
    """REST over one connected events socket: requests out, answers matched by id."""

    _ids = itertools.count(1)          # unique across sockets: a late answer never matches

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self._ws = ws
        self._pending: dict[str, asyncio.Future[WsReply]] = {}
        self.lost: str = ""

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def request(self, method: str, path: str, query: dict[str, Any], body: Any,
                      timeout: float) -> WsReply:
        """Send one request and wait for its answer (``TimeoutError`` after ``timeout``).
        ``query`` values are sent as their ``str()``."""
        if self.lost:
            raise WsLinkLost(f"ARI events socket lost ({self.lost})")
        request_id = str(next(self._ids))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[WsReply] = loop.create_future()
        self._pending[request_id] = future
        expiry: asyncio.TimerHandle | None = None
        try:
            await self._ws.send_str(_frame(request_id, method, path, query, body))
            expiry = loop.call_later(timeout, _expire, future)    # after the frame has left
            return await future
        except (ConnectionError, RuntimeError) as exc:       # closing / closed transport
            raise WsLinkLost(f"ARI events socket lost while sending ({exc})") from exc
        finally:
            if expiry is not None:
                expiry.cancel()
            self._pending.pop(request_id, None)

    def take(self, message: dict[str, Any]) -> None:
        """An answer from the socket: wake its request (late answers are dropped)."""
        future = self._pending.pop(str(message.get("request_id", "")), None)
        if future is None or future.done():
            logger.debug("ARI answer to no waiting request: %s", message.get("uri"))
            return
        future.set_result(WsReply(int(message.get("status_code", 0)),
                                  str(message.get("reason_phrase", "")),
                                  message.get("message_body") or ""))

    def close(self, why: str) -> None:
        """The socket is gone: every request still waiting fails now."""
        self.lost = why or "closed"
        pending, self._pending = self._pending, {}
        if pending:
            logger.warning("ARI events socket lost with %d request(s) in flight", len(pending))
        for future in pending.values():
            if not future.done():
                future.set_exception(WsLinkLost(f"ARI events socket lost ({self.lost})"))


def _expire(future: asyncio.Future[WsReply]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


def _frame(request_id: str, method: str, path: str, query: dict[str, Any], body: Any) -> str:
    """The request's text frame, in one ``orjson`` pass (the body is a JSON text inside it)."""
    frame: dict[str, Any] = {"type": "RESTRequest", "request_id": request_id,
                             "method": method, "uri": path.lstrip("/")}
    if query:
        frame["query_strings"] = [{"name": k, "value": v if v.__class__ is str else str(v)}
                                  for k, v in query.items()]
    if body is not None:
        frame["content_type"] = "application/json"
        frame["message_body"] = encode(body)
    return encode(frame)
