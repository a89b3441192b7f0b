"""Ports for the instances that tests and benchmarks start side by side on one machine.

A port the kernel hands out for ``bind(port 0)`` comes from its *ephemeral* range, the range
every outgoing connection takes its source port from.  A test picks serve's ports once per
module and serve binds them again at each (re)start; in between, any process's connection to
PostgreSQL, Asterisk or serve itself can take the port as its source, and serve's bind fails
with EADDRINUSE (CI: serve's FastAGI port, two tests lost at set-up).  So listen ports here
come from below the ephemeral range, where the kernel never picks on its own, and each one
handed out is reserved across processes (pytest-xdist workers, a benchmark beside the suite)
by a lock on a file named after it, held while the process lives.

Media ports (sipp's RTP) keep a range of their own; Asterisk's RTP blocks sit below both
(``testkit.isolated.RTP_RANGE``).
"""
from __future__ import annotations

import collections
import fcntl
import logging
import os
import random
import socket
import tempfile
import threading
from pathlib import Path

logger = logging.getLogger(__name__)

MEDIA_PORTS = (16000, 26000)    # sipp's RTP (UDP), blocks of 4
LISTEN_PORTS = (26000, 32768)   # SIP, ARI, AMI, FastAGI, web, metrics: TCP and UDP
MAX_HELD = 1024                 # reservations a process keeps (oldest released first)
LOCK_DIR = Path(tempfile.gettempdir()) / "callpilot-ports"


class PortError(RuntimeError):
    """No free port was found in the range."""


def ephemeral_range(path: str = "/proc/sys/net/ipv4/ip_local_port_range") -> tuple[int, int]:
    """The kernel's ephemeral port range (Linux's default if it cannot be read)."""
    try:
        low, high = (int(x) for x in Path(path).read_text().split())
        return low, high
    except (OSError, ValueError):
        return 32768, 60999


def listen_range(ephemeral: tuple[int, int] | None = None) -> tuple[int, int]:
    """``LISTEN_PORTS`` with any overlap with the ephemeral range cut off."""
    low, high = LISTEN_PORTS
    eph_low, eph_high = ephemeral or ephemeral_range()
    if eph_low < high and eph_high >= low:     # overlap: keep the larger side outside it
        below, above = (low, eph_low), (eph_high + 1, high)
        low, high = max(below, above, key=lambda r: r[1] - r[0])
    if high - low < 256:
        raise PortError(f"no listen port range outside the ephemeral range {eph_low}-{eph_high}")
    return low, high


def port_free(host: str, port: int, kind: int) -> bool:
    """Whether ``port`` can be bound on ``host`` for socket ``kind`` right now."""
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class PortReservations:
    """Hands out listen ports: a cursor walking the range from a random start, skipping
    ports another process has reserved (its lock file is locked) or someone has bound."""

    def __init__(self, port_range: tuple[int, int], lock_dir: Path = LOCK_DIR,
                 max_held: int = MAX_HELD):
        self.low, self.high = port_range
        self.lock_dir = lock_dir
        self.max_held = max_held
        self.lock_dir.mkdir(parents=True, exist_ok=True)
        self._cursor = random.randrange(self.low, self.high)
        self._held: collections.OrderedDict[int, int] = collections.OrderedDict()  # port -> fd
        self._lock = threading.Lock()

    def take(self, host: str, kinds: tuple[int, ...]) -> int:
        with self._lock:
            for _ in range(self.high - self.low):
                port = self._advance()
                if port in self._held or not self._reserve(port):
                    continue
                if all(port_free(host, port, kind) for kind in kinds):
                    return port
                self._release(port)
        raise PortError(f"no free port in {self.low}-{self.high - 1} on {host}")

    def _advance(self) -> int:
        port = self._cursor
        self._cursor = port + 1 if port + 1 < self.high else self.low
        return port

    def _reserve(self, port: int) -> bool:
        fd = os.open(self.lock_dir / str(port), os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        self._held[port] = fd
        while len(self._held) > self.max_held:
            self._release(next(iter(self._held)))
        return True

    def _release(self, port: int) -> None:
        fd = self._held.pop(port, None)
        if fd is not None:
            os.close(fd)      # closing the file drops the lock


_listen: PortReservations | None = None
_listen_lock = threading.Lock()


def free_port(host: str = "127.0.0.1", kinds: tuple[int, ...] = (socket.SOCK_DGRAM,)) -> int:
    """A port free on ``host`` for every socket kind in ``kinds``, outside the kernel's
    ephemeral range and reserved for this process."""
    global _listen
    with _listen_lock:
        if _listen is None:
            _listen = PortReservations(listen_range())
    return _listen.take(host, kinds)


_media_lock = threading.Lock()
_next_media = random.randrange(*MEDIA_PORTS) & ~3


def media_port(host: str = "127.0.0.1") -> int:
    """An even RTP port with port..port+3 free (sipp binds media_port and media_port+2)."""
    global _next_media
    with _media_lock:
        for _ in range((MEDIA_PORTS[1] - MEDIA_PORTS[0]) // 4):
            port = _next_media
            _next_media = port + 4 if port + 8 < MEDIA_PORTS[1] else MEDIA_PORTS[0]
            if all(port_free(host, p, socket.SOCK_DGRAM) for p in range(port, port + 4)):
                return port
    raise PortError("no free RTP port block for sipp")
