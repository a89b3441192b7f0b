"""serve's live status and agent commands on a unix socket in the state dir.

A unix socket (mode 0600) rather than a TCP port: nothing to configure, nothing reachable
from the network, and only the owner of the state dir can command agents.
"""
from __future__ import annotations

import http.client
import inspect
import json
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

logger = logging.getLogger(__name__)


MAX_VOCABULARY_WAIT = 30.0       # seconds a vocabulary question may wait for a loading model


def _words_of(body: Any) -> dict[str, list[str]]:
    if not isinstance(body, dict) or not all(
            isinstance(lang, str) and isinstance(words, list) and all(isinstance(w, str) for w in words)
            for lang, words in body.items()):
        raise ValueError("expected {language: [word, ...]}")
    return body


class StatusServer:
    def __init__(self, path: Path, snapshot: Callable[[], dict[str, Any]],
                 agent_command: Callable[[str, str, str], dict[str, Any]] | None = None,
                 reload: Callable[[str], dict[str, Any] | Awaitable[dict[str, Any]]] | None = None,
                 unknown_words: Callable[[dict[str, list[str]], float], Awaitable[dict[str, Any]]] | None = None):
        self.path = path
        self.snapshot = snapshot
        self.agent_command = agent_command
        self.reload = reload            # "queues": the admin web changed them
        self.unknown_words = unknown_words  # the admin web checks a flow's phrases (D42)
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/status", self._status)
        app.router.add_post("/agents/{ext}/{action}", self._agent)
        app.router.add_post("/reload/{what}", self._reload)
        app.router.add_post("/speech/unknown", self._unknown_words)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        await web.UnixSite(self._runner, str(self.path)).start()
        self.path.chmod(0o600)

    async def _status(self, _request: web.Request) -> web.Response:
        return web.json_response(self.snapshot())

    async def _agent(self, request: web.Request) -> web.Response:
        if self.agent_command is None:
            return web.json_response({"error": "agent commands not available"}, status=404)
        reason = request.query.get("reason", "")
        try:
            result = self.agent_command(request.match_info["ext"], request.match_info["action"], reason)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=409)
        return web.json_response(result)

    async def _reload(self, request: web.Request) -> web.Response:
        if self.reload is None:
            return web.json_response({"error": "reload not available"}, status=404)
        try:
            result = self.reload(request.match_info["what"])
            if inspect.isawaitable(result):      # agents: render + Asterisk reload
                result = await result
            return web.json_response(result)
        except ValueError as exc:
            return web.json_response({"error": str(exc)}, status=404)

    async def _unknown_words(self, request: web.Request) -> web.Response:
        """Body ``{language: [word, ...]}``, query ``wait`` (seconds, at most
        :data:`MAX_VOCABULARY_WAIT`): per language with an engine, its state and the words
        it does not know."""
        if self.unknown_words is None:
            return web.json_response({"error": "no speech engines here"}, status=404)
        try:
            words = _words_of(await request.json())
            wait = min(max(float(request.query.get("wait", "0")), 0.0), MAX_VOCABULARY_WAIT)
        except ValueError as exc:          # JSONDecodeError too
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        return web.json_response(await self.unknown_words(words, wait))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        self.path.unlink(missing_ok=True)


async def fetch(path: Path, timeout: float = 2.0) -> dict[str, Any] | None:
    """serve's snapshot, or None when serve is not running."""
    if not path.exists():
        return None
    try:
        conn = aiohttp.UnixConnector(path=str(path))
        async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as s:
            async with s.get("http://serve/status") as resp:
                return await resp.json()
    except (aiohttp.ClientError, OSError, TimeoutError):
        return None


async def post(path: Path, url_path: str, params: dict[str, str] | None = None,
               timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
    """POST to serve's control socket; (status, body).  Raises OSError if serve is down.
    ``params`` go in the query string, encoded (a reason may hold ``&``, ``=``, spaces)."""
    conn = aiohttp.UnixConnector(path=str(path))
    async with aiohttp.ClientSession(connector=conn, timeout=aiohttp.ClientTimeout(total=timeout)) as s:
        async with s.post(f"http://serve{url_path}", params=params or None) as resp:
            return resp.status, await resp.json()


# -- blocking clients for threads without an event loop (the admin web's WSGI threads) -------


class _UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float) -> None:
        super().__init__("serve", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(str(self._path))
        except OSError:
            sock.close()
            raise
        self.sock = sock


def request_sync(path: Path, method: str, url_path: str, timeout: float = 2.0,
                 body: Any = None) -> tuple[int, dict[str, Any]]:
    """One request to serve's socket from a plain thread (no asyncio loop per call: the web
    serves each page from a pool thread); ``body`` is sent as JSON.  Raises OSError when
    serve is down."""
    conn = _UnixHTTPConnection(path, timeout)
    try:
        if body is None:
            conn.request(method, url_path)
        else:
            conn.request(method, url_path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    except (http.client.HTTPException, ValueError) as exc:
        raise OSError(f"bad answer from serve: {exc}") from exc
    finally:
        conn.close()


def fetch_sync(path: Path, timeout: float = 2.0) -> dict[str, Any] | None:
    """serve's snapshot, or None when serve is not running (blocking twin of :func:`fetch`)."""
    if not path.exists():
        return None
    try:
        status, body = request_sync(path, "GET", "/status", timeout)
    except OSError:
        return None
    return body if status == 200 else None
