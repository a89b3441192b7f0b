"""FastAGI server over real TCP with a scripted peer standing in for Asterisk's AGI side."""
from __future__ import annotations

import asyncio
import socket

import pytest

from callpilot.infra.asterisk import agi
from callpilot.infra.asterisk.agi import AgiServer
from testkit.sipua import free_port

HEADERS = (b"agi_network: yes\nagi_network_script: ivr/main\nagi_uniqueid: 1700.1\n"
           b"agi_callerid: 15550001\nagi_extension: 801\n\n")


@pytest.fixture
async def server():
    seen: list[tuple[dict, dict]] = []

    async def handler(request):
        result = await request.send_command("WAIT FOR DIGIT 1000")
        seen.append((dict(request.headers), result))

    srv = AgiServer("127.0.0.1", free_port("127.0.0.1", kinds=(socket.SOCK_STREAM,)))
    srv.route("ivr/main", handler)
    await srv.start()
    yield srv, seen
    await srv.stop()


async def agi_session(port: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(HEADERS)
    command = await asyncio.wait_for(reader.readline(), 5)
    writer.write(b"200 result=49\n")        # the caller pressed '1'
    await writer.drain()
    await asyncio.wait_for(reader.read(), 5)  # server closes after the handler returns
    writer.close()
    return command


async def test_route_runs_with_headers_and_command_results(server):
    srv, seen = server
    command = await agi_session(srv.port)
    assert command == b"WAIT FOR DIGIT 1000\n"
    headers, result = seen[0]
    assert headers["agi_uniqueid"] == "1700.1" and headers["agi_extension"] == "801"
    assert result["result"][0] == "49"


async def test_peer_closing_before_headers_does_not_freeze_the_loop(server):
    srv, seen = server
    for _ in range(3):                      # a port scan / TCP health check
        _r, writer = await asyncio.open_connection("127.0.0.1", srv.port)
        writer.close()
    ticks = 0

    async def ticker():
        nonlocal ticks
        for _ in range(5):
            await asyncio.sleep(0.01)
            ticks += 1
    await asyncio.wait_for(ticker(), 2)
    assert ticks == 5
    assert await agi_session(srv.port) == b"WAIT FOR DIGIT 1000\n"
    assert len(seen) == 1


async def test_silent_peer_is_dropped_after_header_timeout(server, monkeypatch):
    srv, _seen = server
    monkeypatch.setattr(agi, "HEADER_TIMEOUT", 0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"agi_network: yes\n")     # never finishes its header block
    assert await asyncio.wait_for(reader.read(), 3) == b""
    writer.close()


def test_plain_function_handlers_are_refused():
    srv = AgiServer("127.0.0.1", 1)
    with pytest.raises(TypeError):
        srv.route("x", lambda request: None)
