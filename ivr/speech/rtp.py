"""Receive the caller's audio as RTP (e.g. from an ARI ``externalMedia`` channel) as PCM frames.

Asterisk sends ``slin`` / ``slin16`` RTP payloads in network byte order (L16, RFC 3551); the
frames yielded here are little-endian 16-bit PCM, ready for :func:`ivr.speech.listen_stream`.
One receiver = one UDP socket = one stream; packets from other sources are ignored once the
first packet fixed the sender.
"""
from __future__ import annotations

import array
import asyncio
import logging
import struct
from collections import deque
from dataclasses import dataclass
from typing import AsyncIterator

import numpy as np

logger = logging.getLogger(__name__)

RTP_VERSION = 2
HEADER = struct.Struct("!BBHII")


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


class RtpReceiver(asyncio.DatagramProtocol):
    """One UDP socket receiving one RTP stream; iterate :meth:`frames` for PCM.

    Frames wait in a deque with one waiter future (no Queue, no ``wait_for`` task per frame:
    a listening call receives 50 packets a second and this is per packet).
    """

    def __init__(self, max_queue: int = 500) -> None:
        self._frames: deque[bytes] = deque()
        self._max_queue = max_queue
        self._waiter: asyncio.Future | None = None
        self._closed = False
        self._transport: asyncio.DatagramTransport | None = None
        self._sender: tuple | None = None
        self._last_sequence: int | None = None
        self._muted = False
        self.dropped = 0

    @classmethod
    async def open(cls, host: str = "127.0.0.1", port: int = 0) -> RtpReceiver:
        loop = asyncio.get_running_loop()
        _transport, receiver = await loop.create_datagram_endpoint(cls, local_addr=(host, port))
        return receiver

    @property
    def address(self) -> tuple[str, int]:
        """Where Asterisk must send: use as ``external_host=host:port``."""
        host, port = self._transport.get_extra_info("sockname")[:2]
        return host, port

    def connection_made(self, transport) -> None:
        self._transport = transport

    def mute(self) -> None:
        """Between two listens of one call: packets still arrive, dropped at once."""
        self._muted = True
        self._frames.clear()

    def unmute(self) -> None:
        self._muted = False
        self._last_sequence = None        # packets were skipped: any sequence is next

    def datagram_received(self, data: bytes, addr) -> None:
        if self._muted:
            return
        if self._sender is None:
            self._sender = addr
        elif addr != self._sender:
            return
        packet = parse_rtp(data)
        if packet is None or not self._in_order(packet.sequence) or \
                len(self._frames) >= self._max_queue:
            self.dropped += 1
            return
        self._frames.append(l16_to_pcm(packet.payload))
        self._wake()

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

    def connection_lost(self, exc) -> None:
        self._closed = True
        self._wake()

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
        if self._transport is not None:
            self._transport.close()
