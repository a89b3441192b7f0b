"""Receive the caller's audio as RTP (e.g. from an ARI ``externalMedia`` channel) as PCM frames.

Asterisk sends ``slin`` / ``slin16`` RTP payloads in network byte order (L16, RFC 3551); the
frames yielded here are little-endian 16-bit PCM, ready for :func:`ivr.speech.listen_stream`.
One receiver = one UDP socket = one stream; packets from other sources are ignored once the
first packet fixed the sender.

The sockets are not watched by the event loop: a listening call receives 50 packets a
second, and a loop wake-up, a datagram callback and a consumer wake-up per packet were most of
serve's listening cost (docs/decisions.md D27).  Instead one timer per loop
(:class:`RtpPoller`, every :data:`POLL_SECONDS`, running only while some receiver listens)
reads every listening socket dry and wakes each consumer once for what arrived.  A receiver
that is muted (a held tap, a pooled one) is not read at all; what queued up meanwhile is
dropped when it is unmuted.
"""
from __future__ import annotations

import array
import asyncio
import logging
import socket
import struct
import weakref
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator

import numpy as np

logger = logging.getLogger(__name__)

RTP_VERSION = 2
HEADER = struct.Struct("!BBHII")
POLL_SECONDS = 0.04       # how often listening sockets are read (<= 2 frames of latency)
MAX_DATAGRAM = 4096


@dataclass(frozen=True)
class RtpPacket:
    sequence: int
    timestamp: int
    payload_type: int
    payload: bytes


def parse_rtp(packet: bytes) -> RtpPacket | None:
    """Parse an RTP packet (CSRCs, extension and padding handled); None if it is not RTP."""
    if len(packet) < HEADER.size:
        return None
    first, second, sequence, timestamp, _ssrc = HEADER.unpack_from(packet)
    if first >> 6 != RTP_VERSION:
        return None
    offset = HEADER.size + 4 * (first & 0x0F)
    if first & 0x10:                                    # header extension
        if len(packet) < offset + 4:
            return None
        offset += 4 + 4 * struct.unpack_from("!H", packet, offset + 2)[0]
    end = len(packet) - (packet[-1] if first & 0x20 and packet else 0)
    if offset > end:
        return None
    return RtpPacket(sequence, timestamp, second & 0x7F, packet[offset:end])


def l16_to_pcm(payload: bytes) -> bytes:
    """Network-order 16-bit samples -> little-endian (what Vosk and WAV files use)."""
    samples = array.array("h")
    samples.frombytes(payload[:len(payload) - len(payload) % 2])
    samples.byteswap()                      # swaps each sample's two bytes, whatever the host
    return samples.tobytes()


def pcm_to_l16(pcm: bytes) -> bytes:
    return np.frombuffer(pcm, dtype="<i2").astype(">i2").tobytes()


class RtpPoller:
    """Reads the listening receivers of one event loop every ``interval`` seconds."""

    _by_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop, interval: float = POLL_SECONDS) -> None:
        self.loop = loop
        self.interval = interval
        self.listening: set[RtpReceiver] = set()
        self._timer: asyncio.TimerHandle | None = None

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> RtpPoller:
        poller = cls._by_loop.get(loop)
        if poller is None:
            poller = cls._by_loop[loop] = cls(loop)
        return poller

    def add(self, receiver: RtpReceiver) -> None:
        self.listening.add(receiver)
        if self._timer is None:
            self._timer = self.loop.call_later(self.interval, self._tick)

    def discard(self, receiver: RtpReceiver) -> None:
        self.listening.discard(receiver)

    def _tick(self) -> None:
        self._timer = None
        for receiver in list(self.listening):
            receiver.drain()
        if self.listening:
            self._timer = self.loop.call_later(self.interval, self._tick)


class RtpReceiver:
    """One UDP socket receiving one RTP stream; iterate :meth:`frames` for PCM.

    Frames wait in a deque with one waiter future (no Queue, no ``wait_for`` task per frame).
    :meth:`datagram_received` takes one packet (the poller calls it for each one it reads).
    """

    def __init__(self, sock: socket.socket | None = None, max_queue: int = 500) -> None:
        self._frames: deque[bytes] = deque()
        self._max_queue = max_queue
        self._waiter: asyncio.Future | None = None
        self._closed = False
        self._sock = sock
        self._poller: RtpPoller | None = None
        self._sender: tuple | None = None
        self._last_sequence: int | None = None
        self._muted = False
        self.dropped = 0

    @classmethod
    async def open(cls, host: str = "127.0.0.1", port: int = 0) -> RtpReceiver:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind((host, port))
        receiver = cls(sock)
        receiver._poller = RtpPoller.of(asyncio.get_running_loop())
        receiver._poller.add(receiver)
        return receiver

    @property
    def address(self) -> tuple[str, int]:
        """Where Asterisk must send: use as ``external_host=host:port``."""
        host, port = self._sock.getsockname()[:2]
        return host, port

    def mute(self) -> None:
        """Between two listens (or in the pool): the socket is not read, frames are dropped."""
        self._muted = True
        self._frames.clear()
        if self._poller is not None:
            self._poller.discard(self)

    def unmute(self) -> None:
        if self._muted:
            self._discard_queued()
        self._muted = False
        self._last_sequence = None        # packets were skipped: any sequence is next
        if self._poller is not None and not self._closed:
            self._poller.add(self)

    def _discard_queued(self) -> None:
        """Drop what the socket holds (audio from before the unmute)."""
        while self._sock is not None:
            try:
                self._sock.recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return

    def drain(self) -> None:
        """Read every packet waiting on the socket; wake the consumer once."""
        sock, queued = self._sock, len(self._frames)
        while sock is not None:
            try:
                data, addr = sock.recvfrom(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:              # e.g. ICMP port unreachable reported on a UDP socket
                break
            self._take(data, addr)
        if len(self._frames) > queued:
            self._wake()

    def datagram_received(self, data: bytes, addr) -> None:
        if self._take(data, addr):
            self._wake()

    def _take(self, data: bytes, addr) -> bool:
        if self._muted:
            return False
        if self._sender is None:
            self._sender = addr
        elif addr != self._sender:
            return False
        if len(data) > HEADER.size and data[0] == 0x80:           # no CSRC, extension, padding
            sequence, payload = (data[2] << 8) | data[3], data[HEADER.size:]
        else:
            packet = parse_rtp(data)
            if packet is None:
                self.dropped += 1
                return False
            sequence, payload = packet.sequence, packet.payload
        if not self._in_order(sequence) or len(self._frames) >= self._max_queue:
            self.dropped += 1
            return False
        self._frames.append(l16_to_pcm(payload))
        return True

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _in_order(self, sequence: int) -> bool:
        """Drop duplicates and late packets (16-bit sequence numbers wrap)."""
        if self._last_sequence is not None and (sequence - self._last_sequence) % 65536 >= 32768 \
                or sequence == self._last_sequence:
            return False
        self._last_sequence = sequence
        return True

    async def next_frame(self, timeout: float) -> bytes | None:
        """The next frame, or None after ``timeout`` seconds without one (or once closed)."""
        if not self._frames and not self._closed:
            loop = asyncio.get_running_loop()
            self._waiter = loop.create_future()
            timer = loop.call_later(timeout, self._wake)
            try:
                await self._waiter
            finally:
                timer.cancel()
                self._waiter = None
        return self._frames.popleft() if self._frames else None

    async def frames(self) -> AsyncIterator[bytes]:
        while True:
            frame = await self.next_frame(3600.0)
            if frame is not None:
                yield frame
            elif self._closed:
                return

    def close(self) -> None:
        """Stop receiving; what already arrived can still be read."""
        if self._closed:
            return
        if not self._muted:
            self.drain()
        if self._poller is not None:
            self._poller.discard(self)
        if self._sock is not None:
            self._sock.close()
        self._closed = True
        self._wake()
