"""bench.acd's raw ARI app (D41): the WebSocket frames it reads and writes, without Asterisk."""
import asyncio
import json

import pytest

from bench.acd.bare_ari import RawBareApp


class Transport:
    def __init__(self):
        self.written: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.written.append(data)


def _server_frame(payload: bytes) -> bytes:
    n = len(payload)
    head = bytes((0x81, n)) if n < 126 else bytes((0x81, 126)) + n.to_bytes(2, "big")
    return head + payload


def _client_frame(data: bytes) -> dict:
    """Unmask one client frame (RFC 6455) and decode its JSON."""
    assert data[0] == 0x81 and data[1] & 0x80, "a masked text frame"
    n, at = data[1] & 0x7F, 2
    if n == 126:
        n, at = int.from_bytes(data[2:4], "big"), 4
    mask, payload = data[at:at + 4], data[at + 4:]
    assert len(payload) == n
    return json.loads(bytes(b ^ mask[i % 4] for i, b in enumerate(payload)))


@pytest.fixture
async def app():
    proto = RawBareApp("callpilot-raw", ["2001", "2002"], "dXNlcjpwdw==", "127.0.0.1:8088")
    proto.connection_made(Transport())
    proto.data_received(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n")
    await asyncio.wait_for(proto.ready, 1)
    return proto


async def test_the_upgrade_asks_for_the_app_and_the_filter_follows(app):
    upgrade, event_filter = app.transport.written
    assert upgrade.startswith(b"GET /ari/events?app=callpilot-raw&subscribeAll=false HTTP/1.1\r\n")
    assert b"Authorization: Basic dXNlcjpwdw==\r\n" in upgrade
    request = _client_frame(event_filter)
    assert (request["method"], request["uri"]) == ("PUT", "applications/callpilot-raw/eventFilter")
    assert {a["type"] for a in json.loads(request["message_body"])["allowed"]} == {
        "StasisStart", "StasisEnd", "RESTResponse"}


async def test_each_caller_rings_the_next_agent_with_serves_request_and_its_end_hangs_the_leg_up(app):
    def start(call, number):
        return _server_frame(json.dumps({"type": "StasisStart", "args": [],
                                         "channel": {"id": call, "caller": {"number": number}}}).encode())
    agent = _server_frame(json.dumps({"type": "StasisStart", "args": ["agent", "c1"],
                                      "channel": {"id": "cp-agent-c1-1"}}).encode())
    end = _server_frame(json.dumps({"type": "StasisEnd", "channel": {"id": "c1"}}).encode())
    both = start("c1", "4311") + start("c2", "4312")
    app.data_received(both[:7])          # a frame split over two reads is read whole
    app.data_received(both[7:] + agent + end)
    sent = [_client_frame(data) for data in app.transport.written[2:]]
    assert [(r["method"], r["uri"]) for r in sent] == [
        ("POST", "channels/cp-agent-c1-1"), ("POST", "channels/cp-agent-c2-1"),
        ("DELETE", "channels/cp-agent-c1-1")]
    query = [{q["name"]: q["value"] for q in r["query_strings"]} for r in sent[:2]]
    assert query[0] == {"endpoint": "PJSIP/2001", "app": "callpilot-raw", "appArgs": "agent,c1",
                        "timeout": "15", "callerId": "4311", "originator": "c1"}
    assert query[1]["endpoint"] == "PJSIP/2002"
    assert app.calls == 2 and len(app.inside_us) == 1     # one read held both originates
