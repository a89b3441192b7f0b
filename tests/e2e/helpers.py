"""Small clients for e2e tests: ARI (REST + events WebSocket), AMI, listening sockets, the
``callpilot`` command line run off the event loop (``callpilot_cli``).

Deliberately independent of ``callpilot.infra.asterisk.ari``/``ami`` so that the e2e suite also
checks those against a second implementation.
"""
from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import math
import re
import struct
import subprocess
import sys
import wave
from pathlib import Path
from typing import Any, Callable, Iterator

import aiohttp

from callpilot.infra.asterisk import runner
from callpilot.infra.config import Config

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def asterisk_running(config: Config) -> Iterator[Config]:
    """An instance's own Asterisk for the ``with`` block: up (errors loudly if it cannot
    start), down again afterwards whatever happened."""
    runner.up(config)
    try:
        yield config
    finally:
        runner.down(config)


async def callpilot_cli(config_path: Path, *args: str, timeout: float = 60.0,
                        env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``callpilot --config <config_path> <args>`` as a subprocess, waited for in a thread: an
    async test's SIP user agents, ARI client and status polls run on the same event loop and
    must not stop while the command runs."""
    exe = Path(sys.executable).with_name("callpilot")
    return await asyncio.to_thread(subprocess.run, [str(exe), "--config", str(config_path), *args],
                                   capture_output=True, text=True, timeout=timeout, env=env)


def basic_auth(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


class AriTestClient:
    """REST calls plus a queue of events for one Stasis application (``subscribe_all``:
    the events of every channel, bridge and endpoint of the instance, e.g. to see what
    another application plays)."""

    def __init__(self, config: Config, app: str, *, subscribe_all: bool = False):
        self.config, self.app, self.subscribe_all = config, app, subscribe_all
        self.base = f"{config.ari_url}/ari"
        self.events: asyncio.Queue[dict] = asyncio.Queue()
        self.seen: list[dict] = []
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None

    async def __aenter__(self) -> "AriTestClient":
        s = self.config.secrets
        self._http = aiohttp.ClientSession(headers=basic_auth(s.ari_user, s.ari_password),
                                           timeout=aiohttp.ClientTimeout(total=10))
        self._ws = await self._http.ws_connect(f"{self.base}/events",
                                               params={"app": self.app,
                                                       "subscribeAll": str(self.subscribe_all).lower()})
        self._reader = asyncio.create_task(self._read())
        return self

    async def __aexit__(self, *exc) -> None:
        if self._reader:
            self._reader.cancel()
        if self._ws:
            await self._ws.close()
        if self._http:
            await self._http.close()

    async def _read(self) -> None:
        async for msg in self._ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                event = json.loads(msg.data)
                self.seen.append(event)
                await self.events.put(event)

    async def request(self, method: str, path: str, **params: Any) -> tuple[int, Any]:
        async with self._http.request(method, f"{self.base}{path}", params=params) as resp:
            body = await resp.text()
            return resp.status, (json.loads(body) if body.strip() else None)

    async def wait_event(self, kind: str, timeout: float = 10.0,
                         where: Callable[[dict], bool] = lambda e: True) -> dict:
        """Next event of type ``kind`` matching ``where`` (others are skipped)."""
        async def find() -> dict:
            while True:
                event = await self.events.get()
                if event.get("type") == kind and where(event):
                    return event
        return await asyncio.wait_for(find(), timeout)

    async def channels(self) -> list[dict]:
        status, body = await self.request("GET", "/channels")
        assert status == 200, body
        return body


async def ami_exchange(config: Config, actions: list[dict[str, str]],
                       user: str | None = None, secret: str | None = None,
                       timeout: float = 10.0) -> list[dict[str, str]]:
    """Log in (given or configured credentials), send ``actions``; one response each.

    The login response is the first element; on a failed login nothing else is sent."""
    s = config.secrets
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", config.asterisk.ami_port), timeout)
    try:
        await asyncio.wait_for(reader.readline(), timeout)   # banner
        login = {"Action": "Login", "Username": user or s.ami_user,
                 "Secret": s.ami_secret if secret is None else secret}
        responses = [await _ami_send(reader, writer, login, timeout)]
        if responses[0].get("Response") != "Success":
            return responses
        for action in actions:
            responses.append(await _ami_send(reader, writer, action, timeout))
        return responses
    finally:
        writer.close()


async def _ami_send(reader, writer, action: dict[str, str], timeout: float) -> dict[str, str]:
    writer.write("".join(f"{k}: {v}\r\n" for k, v in action.items()).encode() + b"\r\n")
    await writer.drain()
    block: dict[str, str] = {}
    while True:
        line = (await asyncio.wait_for(reader.readline(), timeout)).decode().rstrip("\r\n")
        if not line and "Response" in block:
            return block
        if ":" in line:
            key, value = line.split(":", 1)
            block.setdefault(key.strip(), value.strip())
        elif not line and not block:
            continue


def listening_sockets(pid: int) -> list[tuple[str, str, int]]:
    """(protocol, local address, port) of every TCP listener / bound UDP socket of ``pid``."""
    out = subprocess.run(["ss", "-H", "-lntup"], capture_output=True, text=True,
                         check=True).stdout
    found = []
    for line in out.splitlines():
        if f"pid={pid}," not in line:
            continue
        fields = line.split()
        address, _, port = fields[4].rpartition(":")
        found.append((fields[0], address.strip("[]").split("%")[0], int(port)))
    return found


def write_tone_wav(path: Path, seconds: float = 1.0, freq: float = 440.0,
                   rate: int = 8000) -> Path:
    """A mono 16-bit PCM WAV tone, the format CallPilot renders prompts in."""
    frames = b"".join(struct.pack("<h", int(12000 * math.sin(2 * math.pi * freq * i / rate)))
                      for i in range(int(seconds * rate)))
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(frames)
    return path


def is_loopback(address: str) -> bool:
    return address == "::1" or bool(re.match(r"^127\.\d+\.\d+\.\d+$", address))
