"""testkit.ports: listen ports outside the kernel's ephemeral range, reserved across processes."""
from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from testkit import ports
from testkit.ports import PortError, PortReservations, listen_range

TCP_UDP = (socket.SOCK_STREAM, socket.SOCK_DGRAM)
HOST = "127.77.0.1"     # a loopback address nothing else here binds: the ranges below are free on it


def test_the_listen_range_stays_out_of_the_ephemeral_range():
    assert listen_range((32768, 60999)) == (26000, 32768)
    assert listen_range((30000, 60999)) == (26000, 30000)       # cut below it
    assert listen_range((20000, 27000)) == (27001, 32768)       # the larger side kept
    with pytest.raises(PortError):
        listen_range((1024, 65535))


def test_free_port_is_below_this_machines_ephemeral_range():
    low, high = ports.ephemeral_range()
    for _ in range(20):
        port = ports.free_port("127.0.0.1", TCP_UDP)
        assert not low <= port <= high


def test_two_allocators_never_hand_out_the_same_port(tmp_path):
    """Two allocators stand for two processes (flock locks conflict between open files)."""
    first = PortReservations((29100, 29110), tmp_path)
    second = PortReservations((29100, 29110), tmp_path)
    taken = [first.take(HOST, TCP_UDP) for _ in range(5)]
    taken += [second.take(HOST, TCP_UDP) for _ in range(5)]
    assert len(set(taken)) == 10
    with pytest.raises(PortError):
        second.take(HOST, TCP_UDP)


def test_a_port_reserved_by_another_process_is_skipped(tmp_path):
    first = PortReservations((29120, 29122), tmp_path)
    port = first.take(HOST, TCP_UDP)
    holder = subprocess.run(
        [sys.executable, "-c",
         "import sys; from pathlib import Path; from testkit.ports import PortReservations;"
         f"r = PortReservations((29120, 29122), Path({str(tmp_path)!r}));"
         f"print(r.take({HOST!r}, (1,)))"],
        capture_output=True, text=True, check=True)
    assert int(holder.stdout) != port


def test_a_bound_port_is_skipped_and_its_reservation_dropped(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        bound = busy.getsockname()[1]
        alloc = PortReservations((bound, bound + 1), tmp_path)
        with pytest.raises(PortError):
            alloc.take("127.0.0.1", (socket.SOCK_STREAM,))
        assert bound not in alloc._held


def test_the_oldest_reservation_is_released_beyond_the_limit(tmp_path):
    alloc = PortReservations((29130, 29140), tmp_path, max_held=3)
    taken = [alloc.take(HOST, TCP_UDP) for _ in range(4)]
    assert list(alloc._held) == taken[1:]
    other = PortReservations((taken[0], taken[0] + 1), tmp_path)
    assert other.take(HOST, TCP_UDP) == taken[0]
