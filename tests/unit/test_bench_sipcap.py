"""bench.acd's capture reader: REST over the events WebSocket (D26) is timed like HTTP."""
import json
import os
import struct

from bench.acd.sipcap import Packet, ari_times

ARI = 8088


def _frame(payload: bytes, mask: bytes = b"") -> bytes:
    length = len(payload)
    head = bytes([0x81])
    bit = 0x80 if mask else 0
    if length < 126:
        head += bytes([bit | length])
    else:
        head += bytes([bit | 126]) + struct.pack("!H", length)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload)) if mask else payload
    return head + mask + body


def _client(ts: float, data: bytes, seq: int) -> Packet:
    return Packet(ts, "127.0.0.1", 40000, "127.0.0.1", ARI, "tcp", data, seq)


def _server(ts: float, data: bytes, seq: int) -> Packet:
    return Packet(ts, "127.0.0.1", ARI, "127.0.0.1", 40000, "tcp", data, seq)


def test_originate_over_the_events_socket_is_timed_from_its_masked_request_frame():
    stasis = json.dumps({"type": "StasisStart", "args": ["enqueue"],
                         "channel": {"id": "call-7", "caller": {"number": "5551"}}}).encode()
    request = json.dumps({"type": "RESTRequest", "request_id": "r1", "method": "POST",
                          "uri": "channels/cp-agent-call-7-1",
                          "query_strings": [{"name": "endpoint", "value": "PJSIP/1001"}]}).encode()
    reply = json.dumps({"type": "RESTResponse", "request_id": "r1", "status_code": 200}).encode()
    upgrade = b"GET /ari/events?app=callpilot HTTP/1.1\r\nUpgrade: websocket\r\n\r\n"
    packets = [
        _client(1.000, upgrade, 1),
        _server(1.001, b"HTTP/1.1 101 Switching Protocols\r\n\r\n", 1),
        _server(2.000, _frame(stasis), 100),
        _client(2.003, _frame(request, os.urandom(4)), 1 + len(upgrade)),
        _server(2.005, _frame(reply), 100 + len(_frame(stasis))),
    ]
    call = ari_times(packets, ARI)["call-7"]
    assert (call.number, call.stasis_start) == ("5551", 2.000)
    assert (call.originate_request, call.originate_response) == (2.003, 2.005)


def test_a_request_frame_split_over_two_segments_is_read_whole():
    request = json.dumps({"type": "RESTRequest", "request_id": "r2", "method": "POST",
                          "uri": "channels/cp-agent-call-9-1", "pad": "x" * 300}).encode()
    upgrade = b"GET /ari/events HTTP/1.1\r\n\r\n"
    frame = _frame(request, b"\x01\x02\x03\x04")
    packets = [_client(1.0, upgrade, 1),
               _client(3.0, frame[:100], 1 + len(upgrade)),
               _client(3.5, frame[100:], 101 + len(upgrade))]
    call = ari_times(packets, ARI)["call-9"]
    assert (call.originate_request, call.originate_response) == (3.5, None)


def test_a_capture_started_after_the_socket_opened_still_reads_its_requests():
    request = json.dumps({"type": "RESTRequest", "request_id": "r3", "method": "POST",
                          "uri": "channels/cp-agent-call-4-1"}).encode()
    reply = json.dumps({"type": "RESTResponse", "request_id": "r3", "status_code": 200}).encode()
    packets = [_client(5.0, _frame(request, b"\x09\x08\x07\x06"), 500),
               _server(5.2, _frame(reply), 900)]
    call = ari_times(packets, ARI)["call-4"]
    assert (call.originate_request, call.originate_response) == (5.0, 5.2)
