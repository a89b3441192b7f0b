"""bench.acd's capture reader: REST over the events WebSocket (D26) is timed like HTTP; the
caller's first RTP packet splits INVITE -> 200 OK -> first RTP -> agent INVITE."""
import json
import os
import struct

from bench.acd.sipcap import Packet, ari_times, correlate, note_caller_rtp, rtp_bpf, sip_messages

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


def _sip(ts: float, src: str, sport: int, dst: str, dport: int, text: str) -> Packet:
    return Packet(ts, src, sport, dst, dport, "udp", text.replace("\n", "\r\n").encode())


def _rtp(ts: float, src: str, dport: int) -> Packet:
    return Packet(ts, src, 7000, "127.0.0.1", dport, "udp", b"\x80\x08" + bytes(170))


SIP = 5060
CALLER_INVITE = """INVITE sip:8501@127.0.0.1 SIP/2.0
From: "4211" <sip:4211@127.0.0.2:5070>;tag=a
To: <sip:8501@127.0.0.1>
Call-ID: c1
CSeq: 1 INVITE
Content-Type: application/sdp

v=0
m=audio 7000 RTP/AVP 8
"""
ANSWER = """SIP/2.0 200 OK
From: "4211" <sip:4211@127.0.0.2:5070>;tag=a
To: <sip:8501@127.0.0.1>;tag=b
Call-ID: c1
CSeq: 1 INVITE
Content-Type: application/sdp

v=0
m=audio 14170 RTP/AVP 8 101
"""


def test_the_callers_first_rtp_is_the_first_packet_to_the_answered_port_after_the_200():
    packets = [_sip(1.000, "127.0.0.2", 5070, "127.0.0.1", SIP, CALLER_INVITE),
               _rtp(1.001, "127.0.0.2", 14170),          # before the answer: another call's
               _sip(1.002, "127.0.0.1", SIP, "127.0.0.2", 5070, ANSWER),
               _rtp(1.003, "127.0.0.9", 14170),          # not the caller
               _rtp(1.004, "127.0.0.2", 14172),          # another port
               _rtp(1.005, "127.0.0.2", 14170),
               _rtp(1.025, "127.0.0.2", 14170)]
    calls = correlate(sip_messages(packets, SIP), SIP, "127.0.0.2", "4")
    note_caller_rtp(packets, calls, "127.0.0.2")
    call = calls["4211"]
    assert (call.answer, call.answer_audio_port, call.caller_rtp) == (1.002, 14170, 1.005)


def test_no_rtp_after_the_answer_leaves_the_point_empty():
    packets = [_sip(1.000, "127.0.0.2", 5070, "127.0.0.1", SIP, CALLER_INVITE),
               _sip(1.002, "127.0.0.1", SIP, "127.0.0.2", 5070, ANSWER),
               _rtp(1.001, "127.0.0.2", 14170)]
    calls = correlate(sip_messages(packets, SIP), SIP, "127.0.0.2", "4")
    note_caller_rtp(packets, calls, "127.0.0.2")
    assert calls["4211"].caller_rtp is None


def test_the_rtp_filter_names_the_source_and_the_port_range():
    assert rtp_bpf("127.0.0.2", 14166, 14565) == (
        "(udp and src host 127.0.0.2 and dst portrange 14166-14565)")


def test_a_bare_ari_apps_caller_is_timed_and_an_agent_leg_is_not():
    """bench.acd's bare ARI apps (D41) enter Stasis with no args: their callers are timed like
    serve's ``enqueue`` callers; an agent leg's StasisStart is no caller."""
    caller = json.dumps({"type": "StasisStart", "args": [],
                         "channel": {"id": "call-8", "caller": {"number": "4311"}}}).encode()
    agent = json.dumps({"type": "StasisStart", "args": ["agent", "call-8"],
                        "channel": {"id": "cp-agent-call-8-1", "caller": {"number": "2001"}}}).encode()
    packets = [_client(1.0, b"GET /ari/events?app=callpilot-bare HTTP/1.1\r\n\r\n", 1),
               _server(2.0, _frame(caller), 100),
               _server(3.0, _frame(agent), 100 + len(_frame(caller)))]
    times = ari_times(packets, ARI)
    assert (times["call-8"].number, times["call-8"].stasis_start) == ("4311", 2.0)
    assert "cp-agent-call-8-1" not in times
