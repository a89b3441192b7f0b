"""Wire-level RTP capture on the loopback interface (AF_PACKET raw socket: needs root, as the
e2e tests run): what a SIP UA really received, with arrival times and audio levels."""
from __future__ import annotations

import socket
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

from testkit.ivr_fakes import alaw_decode


@dataclass
class Packet:
    at: float
    to_caller: bool
    level_db: float


LOUD_DB = -45.0      # the speech VAD's floor (ivr.speech.vad): louder is speech or prompt audio


class RtpSniffer:
    """Captures the caller's RTP on the loopback interface (AF_PACKET, needs root) and
    tells when speech started on the wire and when the prompt audio stopped."""

    def __init__(self, media_port: int, host: str | None = None):
        """``host``: the UA's own address.  Ports are free per address, so another UA of the
        test (127.0.1.x), or of a parallel test worker, can hold the same port number on
        another address: without ``host`` its RTP would be taken for this UA's."""
        self.port = media_port
        self.host = socket.inet_aton(host) if host else None
        self.packets: list[Packet] = []
        self._stop = threading.Event()
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0003))
        self._sock.bind(("lo", 0))
        self._sock.settimeout(0.2)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RtpSniffer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(2)
        self._sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                frame, address = self._sock.recvfrom(65535)
            except socket.timeout:
                continue
            if address[2] == socket.PACKET_OUTGOING:     # loopback shows each packet twice
                continue
            self._parse(time.monotonic(), frame)

    def _parse(self, at: float, frame: bytes) -> None:
        if len(frame) < 42 or frame[12:14] != b"\x08\x00" or frame[23] != 17:
            return
        ihl = (frame[14] & 0x0F) * 4
        src, dst = struct.unpack("!HH", frame[14 + ihl:18 + ihl])
        rtp = frame[22 + ihl:]
        if self.port not in (src, dst) or len(rtp) < 12 or rtp[0] >> 6 != 2 or rtp[1] & 0x7F != 8:
            return
        ua_address = frame[30:34] if dst == self.port else frame[26:30]   # IPv4 dst / src
        if self.host is not None and ua_address != self.host:
            return
        samples = alaw_decode(rtp[12:]).astype(np.float64)
        level = 10 * np.log10(np.mean(samples ** 2) / 32768 ** 2 + 1e-12)
        self.packets.append(Packet(at, dst == self.port, float(level)))

    def speech_onset(self, after: float) -> float:
        return next(p.at for p in self.packets
                    if not p.to_caller and p.at >= after and p.level_db > LOUD_DB)

    def prompt_stop(self, after: float, quiet: float = 0.4) -> float:
        """Start of the first run of >= ``quiet`` s without loud audio towards the caller."""
        last_loud = after
        for p in (p for p in self.packets if p.to_caller and p.at >= after):
            if p.level_db > LOUD_DB:
                if p.at - last_loud >= quiet:
                    return last_loud
                last_loud = p.at
        return last_loud

    def loud_to_caller_between(self, start: float, end: float) -> int:
        return sum(1 for p in self.packets
                   if p.to_caller and start <= p.at < end and p.level_db > LOUD_DB)
