"""Packet capture on loopback (dumpcap) and the SIP / ARI messages read back from it.

Why a capture rather than sipp's own logs: every timestamp comes from the kernel when the
packet crossed ``lo``, on one clock, with microsecond resolution.  sipp's ``[clock_tick]``
is per process (not comparable between the caller and the agent phones), and its
``-trace_msg`` / ``[timestamp]`` stamps are taken when a busy sipp gets round to the
message.  The capture filter keeps only the instance's SIP port, its ARI port and the
callers' RTP into Asterisk (whose first packet ends ``Answer()``'s wait); the agents' and
Asterisk's own RTP never reach user space.
"""
from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

DUMPCAP = os.environ.get("CALLPILOT_DUMPCAP", "dumpcap")
START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0

_COMPACT = {"f": "from", "t": "to", "i": "call-id", "m": "contact", "v": "via", "l": "content-length"}
_SIP_USER = re.compile(r"sips?:([^@;>\s]+)@")
_AUDIO_PORT = re.compile(rb"^m=audio (\d+) ", re.M)
_TAG = re.compile(r";\s*tag=", re.I)


class CaptureError(RuntimeError):
    """dumpcap could not be started or its file could not be read."""


# --- capture process ---------------------------------------------------------------------


class Capture:
    """``dumpcap -i lo`` with a BPF filter, writing a classic pcap file."""

    def __init__(self, path: Path, bpf: str, interface: str = "lo"):
        self.path = path
        self.bpf = bpf
        self.interface = interface
        self.proc: subprocess.Popen | None = None
        self._err = path.with_suffix(".stderr")

    def start(self) -> "Capture":
        if not shutil.which(DUMPCAP):
            raise CaptureError(f"{DUMPCAP} not found (apt-get install wireshark-common or tshark)")
        argv = [DUMPCAP, "-i", self.interface, "-f", self.bpf, "-P", "-B", "16", "-s", "65535",
                "-w", str(self.path)]
        with open(self._err, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                         stderr=err, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise CaptureError(f"dumpcap exited ({self.proc.returncode}): {self._stderr()}")
            if "Capturing on" in self._stderr() and self.path.exists():
                logger.info("capturing %r on %s into %s", self.bpf, self.interface, self.path)
                return self
            time.sleep(0.05)
        self.stop()
        raise CaptureError(f"dumpcap did not start within {START_TIMEOUT} s: {self._stderr()}")

    def stop(self) -> None:
        """SIGTERM (dumpcap flushes and closes the file), SIGKILL if it lingers."""
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(STOP_TIMEOUT)

    def _stderr(self) -> str:
        try:
            return self._err.read_text(errors="replace")
        except FileNotFoundError:
            return ""


# --- pcap reading -------------------------------------------------------------------------


@dataclass
class Packet:
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    proto: str            # "udp" | "tcp"
    payload: bytes
    seq: int = 0          # TCP sequence number of the first payload byte


def read_pcap(path: Path) -> list[Packet]:
    """IPv4 UDP/TCP packets of a classic pcap file (Ethernet, Linux cooked or raw IP)."""
    data = path.read_bytes()
    if len(data) < 24:
        raise CaptureError(f"{path}: not a pcap file ({len(data)} bytes)")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise CaptureError(f"{path}: unknown pcap magic {magic.hex()} (pcapng? use dumpcap -P)")
    nano = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    packets, offset = [], 24
    while offset + 16 <= len(data):
        sec, frac, incl, _orig = struct.unpack(endian + "IIII", data[offset:offset + 16])
        frame = data[offset + 16:offset + 16 + incl]
        offset += 16 + incl
        packet = _decode(frame, linktype, sec + frac / (1e9 if nano else 1e6))
        if packet is not None:
            packets.append(packet)
    return packets


def _ip_offset(frame: bytes, linktype: int) -> int | None:
    if linktype == 1:                       # Ethernet (Linux lo)
        return 14 if frame[12:14] == b"\x08\x00" else None
    if linktype == 113:                     # Linux cooked v1
        return 16 if frame[14:16] == b"\x08\x00" else None
    if linktype == 276:                     # Linux cooked v2
        return 20 if frame[0:2] == b"\x08\x00" else None
    if linktype in (12, 101, 228):          # raw IPv4
        return 0
    if linktype == 0:                       # BSD loopback
        return 4
    return None


def _decode(frame: bytes, linktype: int, ts: float) -> Packet | None:
    ip = _ip_offset(frame, linktype)
    if ip is None or len(frame) < ip + 20 or frame[ip] >> 4 != 4:
        return None
    ihl = (frame[ip] & 0x0F) * 4
    total = struct.unpack("!H", frame[ip + 2:ip + 4])[0]
    proto = frame[ip + 9]
    src = ".".join(str(b) for b in frame[ip + 12:ip + 16])
    dst = ".".join(str(b) for b in frame[ip + 16:ip + 20])
    l4 = ip + ihl
    end = ip + total if total else len(frame)
    if proto == 17:
        sport, dport = struct.unpack("!HH", frame[l4:l4 + 4])
        return Packet(ts, src, sport, dst, dport, "udp", frame[l4 + 8:end])
    if proto == 6:
        sport, dport, seq = struct.unpack("!HHI", frame[l4:l4 + 8])
        doff = (frame[l4 + 12] >> 4) * 4
        return Packet(ts, src, sport, dst, dport, "tcp", frame[l4 + doff:end], seq)
    return None


# --- SIP ------------------------------------------------------------------------------------


@dataclass
class SipMessage:
    ts: float
    src: str
    sport: int
    dst: str
    dport: int
    method: str | None        # request method, None for a response
    status: int | None        # response code, None for a request
    cseq_method: str
    call_id: str
    from_user: str
    to_tagged: bool
    audio_port: int | None = None   # the SDP's m=audio port, if the message has a body


def parse_sip(packet: Packet) -> SipMessage | None:
    head_bytes, _, body = packet.payload.partition(b"\r\n\r\n")
    head = head_bytes.decode("latin-1")
    lines = head.split("\r\n")
    if not lines or not lines[0]:
        return None
    first = lines[0].split()
    if first[0] == "SIP/2.0" and len(first) > 1 and first[1].isdigit():
        method, status = None, int(first[1])
    elif len(first) == 3 and first[2] == "SIP/2.0":
        method, status = first[0], None
    else:
        return None
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if sep:
            key = name.strip().lower()
            headers.setdefault(_COMPACT.get(key, key), value.strip())
    user = _SIP_USER.search(headers.get("from", ""))
    audio = _AUDIO_PORT.search(body)
    return SipMessage(packet.ts, packet.src, packet.sport, packet.dst, packet.dport, method, status,
                      headers.get("cseq", "").split()[-1] if headers.get("cseq") else "",
                      headers.get("call-id", ""), user.group(1) if user else "",
                      bool(_TAG.search(headers.get("to", ""))), int(audio.group(1)) if audio else None)


def sip_messages(packets: list[Packet], sip_port: int) -> list[SipMessage]:
    out = []
    for packet in packets:
        if packet.proto == "udp" and sip_port in (packet.sport, packet.dport) and packet.payload:
            msg = parse_sip(packet)
            if msg is not None:
                out.append(msg)
    return out


@dataclass
class CallTimes:
    """Kernel timestamps (s) of one benchmark call, found by its unique caller number."""

    number: str
    invite: float | None = None             # caller INVITE reaches Asterisk
    answer: float | None = None             # Asterisk's 200 OK to the caller (Answer())
    agent_invite: float | None = None       # Asterisk's first INVITE to an agent phone
    agent_answer: float | None = None       # the agent phone's 200 OK
    agent_invites: int = 0                  # distinct agent legs (ring-no-answer retries)
    answer_audio_port: int | None = None    # Asterisk's RTP port in its 200 OK to the caller
    caller_rtp: float | None = None         # the caller's first RTP packet after the 200 OK
    caller_call_id: str = ""
    agent_call_ids: set[str] = field(default_factory=set)

    @property
    def latency(self) -> float | None:
        """Caller INVITE -> agent INVITE, seconds."""
        if self.invite is None or self.agent_invite is None:
            return None
        return self.agent_invite - self.invite


def correlate(messages: list[SipMessage], sip_port: int, trunk_ip: str, prefix: str) -> dict[str, CallTimes]:
    """Calls whose caller number starts with ``prefix``: caller leg (from ``trunk_ip`` to the
    SIP port) and agent legs (from the SIP port to anyone else, carrying the same number)."""
    calls: dict[str, CallTimes] = {}
    caller_ids: dict[str, CallTimes] = {}
    agent_ids: dict[str, CallTimes] = {}
    for msg in messages:
        inbound = msg.dport == sip_port and msg.src == trunk_ip
        if msg.method == "INVITE" and not msg.to_tagged and msg.from_user.startswith(prefix):
            call = calls.setdefault(msg.from_user, CallTimes(msg.from_user))
            if inbound and call.invite is None:
                call.invite, call.caller_call_id = msg.ts, msg.call_id
                caller_ids[msg.call_id] = call
            elif msg.sport == sip_port and not inbound and msg.call_id not in call.agent_call_ids:
                call.agent_call_ids.add(msg.call_id)
                call.agent_invites += 1
                agent_ids[msg.call_id] = call
                if call.agent_invite is None:
                    call.agent_invite = msg.ts
        elif msg.status == 200 and msg.cseq_method == "INVITE":
            if msg.call_id in caller_ids and msg.sport == sip_port:
                call = caller_ids[msg.call_id]
                if call.answer is None:
                    call.answer, call.answer_audio_port = msg.ts, msg.audio_port
            elif msg.call_id in agent_ids and msg.dport == sip_port:
                call = agent_ids[msg.call_id]
                call.agent_answer = call.agent_answer or msg.ts
    return calls


def note_caller_rtp(packets: list[Packet], calls: dict[str, CallTimes], trunk_ip: str) -> None:
    """Each call's first RTP packet from the caller (``trunk_ip``) to the port Asterisk
    answered with, at or after its 200 OK: what lets ``Answer()`` return (it waits for a
    first voice frame).  Needs the capture to keep the caller's RTP (``rtp_bpf``)."""
    arrivals: dict[int, list[float]] = defaultdict(list)
    for packet in packets:
        if packet.proto == "udp" and packet.src == trunk_ip:
            arrivals[packet.dport].append(packet.ts)
    for times in arrivals.values():
        times.sort()
    for call in calls.values():
        ts = arrivals.get(call.answer_audio_port or -1, [])
        if call.answer is not None and ts:
            i = bisect.bisect_left(ts, call.answer)
            call.caller_rtp = ts[i] if i < len(ts) else None


def rtp_bpf(source: str, first_port: int, last_port: int) -> str:
    """Capture filter for the RTP ``source`` sends into Asterisk's port range."""
    return f"(udp and src host {source} and dst portrange {first_port}-{last_port})"


# --- ARI (HTTP + WebSocket on loopback) -------------------------------------------------------


@dataclass
class AriTimes:
    """When CallPilot's path crossed the ARI socket, per caller channel (= call id)."""

    call_id: str
    number: str = ""
    stasis_start: float | None = None        # event frame leaves Asterisk
    park_request: float | None = None        # POST /bridges/cp-hold-*/addChannel
    park_response: float | None = None
    originate_request: float | None = None   # POST /channels/cp-agent-<call>-1
    originate_response: float | None = None


_REQUEST = re.compile(rb"^(GET|POST|PUT|DELETE) (\S+) HTTP/1\.[01]\r\n")
_RESPONSE = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")


def ari_times(packets: list[Packet], ari_port: int) -> dict[str, AriTimes]:
    """Best effort: StasisStart frames and the park / originate requests of each call."""
    flows: dict[tuple, list[Packet]] = defaultdict(list)
    for packet in packets:
        if packet.proto == "tcp" and ari_port in (packet.sport, packet.dport) and packet.payload:
            flows[(packet.src, packet.sport, packet.dst, packet.dport)].append(packet)
    calls: dict[str, AriTimes] = {}
    ws_requests: dict[str, tuple[float, str, str]] = {}
    ws_replies: dict[str, float] = {}
    for (_s, sport, _d, dport), segs in flows.items():
        segs = _dedupe(segs)
        if dport == ari_port and _is_events_socket(segs):
            for ts, text in _ws_frames(segs, masked=True):
                _rest_request(ts, text, ws_requests)
        elif dport == ari_port:
            _requests(segs, calls, flows.get((_d, dport, _s, sport), []))
        elif _looks_like_websocket(segs):
            for ts, text in _ws_frames(segs):
                _stasis_event(ts, text, calls)
                _rest_response(ts, text, ws_replies)
    for request_id, (ts, method, uri) in ws_requests.items():
        _note_request(calls, method, "/ari/" + uri.lstrip("/"), ts, ws_replies.get(request_id))
    for call_id, call in calls.items():
        call.call_id = call_id
    return calls


def _dedupe(segs: list[Packet]) -> list[Packet]:
    seen, out = set(), []
    for seg in segs:
        if seg.seq not in seen:
            seen.add(seg.seq)
            out.append(seg)
    return out


def _requests(segs: list[Packet], calls: dict[str, AriTimes], replies: list[Packet]) -> None:
    """HTTP/1.1 without pipelining: the n-th request on a connection gets its n-th reply."""
    requests = [(seg.ts, m.group(1).decode(), m.group(2).decode())
                for seg in segs if (m := _REQUEST.match(seg.payload))]
    responses = [seg.ts for seg in _dedupe(replies) if _RESPONSE.match(seg.payload)]
    for i, (ts, method, target) in enumerate(requests):
        reply = responses[i] if i < len(responses) and responses[i] >= ts else None
        _note_request(calls, method, target, ts, reply)


def _note_request(calls: dict[str, AriTimes], method: str, target: str, ts: float,
                  reply: float | None) -> None:
    """A park or originate request of a call (HTTP, or REST over the events socket, D26)."""
    path, _, query = target.partition("?")
    if method != "POST":
        return
    params = dict(p.partition("=")[::2] for p in query.split("&") if p)
    if path.startswith("/ari/bridges/cp-hold-") and path.endswith("/addChannel"):
        call = calls.setdefault(_unquote(params.get("channel", "")), AriTimes(""))
        call.park_request, call.park_response = ts, reply
    elif path.startswith("/ari/channels/cp-agent-") and path.endswith("-1"):
        call_id = path[len("/ari/channels/cp-agent-"):].rsplit("-", 1)[0]
        call = calls.setdefault(call_id, AriTimes(call_id))
        call.originate_request, call.originate_response = ts, reply


def _unquote(value: str) -> str:
    from urllib.parse import unquote
    return unquote(value)


def _looks_like_websocket(segs: list[Packet]) -> bool:
    return any(seg.payload[:1] == b"\x81" for seg in segs[:50])


def _is_events_socket(segs: list[Packet]) -> bool:
    """The client side of the events WebSocket: the upgrade GET, or (a capture started after
    the connect) masked text frames."""
    return any(seg.payload.startswith(b"GET /ari/events")
               or (seg.payload[:1] == b"\x81" and len(seg.payload) > 1 and seg.payload[1] & 0x80)
               for seg in segs[:50])


def _ws_frames(segs: list[Packet], masked: bool = False):
    """(timestamp of the segment completing the frame, text) of each text frame of one
    direction: server->client frames are plain, client->server ones masked (RFC 6455).  A
    stream starting mid-frame (or with the upgrade's HTTP text) is resynchronised on the next
    plausible header."""
    buf, ends, base = b"", [], 0
    for seg in segs:
        buf += seg.payload
        ends.append((base + len(buf), seg.ts))
    pos = buf.find(b"\r\n\r\n") + 4 if buf[:5] in (b"GET /", b"HTTP/") else 0  # the upgrade
    while pos + 2 <= len(buf):
        b0, b1 = buf[pos], buf[pos + 1]
        if b0 & 0x70 or bool(b1 & 0x80) != masked or b0 & 0x0F not in (0, 1, 2, 8, 9, 10):
            pos += 1            # not a frame header: resync
            continue
        length, hdr = b1 & 0x7F, 2
        if length >= 126:
            hdr = 4 if length == 126 else 10
            if pos + hdr > len(buf):
                return
            length = int.from_bytes(buf[pos + 2:pos + hdr], "big")
        key = buf[pos + hdr:pos + hdr + 4] if masked else b""
        hdr += len(key)
        end = pos + hdr + length
        if end > len(buf):
            return
        if b0 & 0x0F == 1:
            ts = next(t for e, t in ends if e >= end)
            yield ts, _unmask(buf[pos + hdr:end], key).decode("utf-8", "replace")
        pos = end


def _unmask(data: bytes, key: bytes) -> bytes:
    if not key:
        return data
    whole = (key * (len(data) // 4 + 1))[:len(data)]
    return (int.from_bytes(data, "big") ^ int.from_bytes(whole, "big")).to_bytes(len(data), "big")


def _rest_request(ts: float, text: str, requests: dict[str, tuple[float, str, str]]) -> None:
    """A RESTRequest sent over the events socket (D26): its uri with the query rebuilt."""
    frame = _json_of_type(text, "RESTRequest")
    if frame is None:
        return
    query = "&".join(f"{q.get('name', '')}={q.get('value', '')}"
                     for q in frame.get("query_strings") or [])
    uri = frame.get("uri", "") + (f"?{query}" if query else "")
    requests[str(frame.get("request_id", ""))] = (ts, frame.get("method", ""), uri)


def _json_of_type(text: str, kind: str) -> dict | None:
    if f'"{kind}"' not in text:
        return None
    try:
        frame = json.loads(text)
    except ValueError:
        return None
    return frame if isinstance(frame, dict) else None


def _rest_response(ts: float, text: str, replies: dict[str, float]) -> None:
    frame = _json_of_type(text, "RESTResponse")
    if frame is not None:
        replies[str(frame.get("request_id", ""))] = ts


def _stasis_event(ts: float, text: str, calls: dict[str, AriTimes]) -> None:
    if '"StasisStart"' not in text:
        return
    try:
        event = json.loads(text)
    except ValueError:
        return
    # a caller: serve's enqueue role, or the bare ARI app's (no args); not an agent leg
    if event.get("type") != "StasisStart" or (event.get("args") or [""])[0] not in ("enqueue", ""):
        return
    channel = event.get("channel", {})
    call = calls.setdefault(channel.get("id", ""), AriTimes(channel.get("id", "")))
    call.number = channel.get("caller", {}).get("number", "")
    call.stasis_start = ts
