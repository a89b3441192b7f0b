"""The RTP receiver's polling: sockets read by one timer per loop, consumers woken per batch.

Real loopback UDP sockets; the counts (wake-ups, frames, sockets read) are what is asserted.
"""
from __future__ import annotations

import asyncio
import socket
import struct

import numpy as np

from ivr.speech.rtp import RtpPoller, RtpReceiver, l16_to_pcm


def packet(sequence: int, samples: np.ndarray) -> bytes:
    return struct.pack("!BBHII", 0x80, 118, sequence, sequence * 320, 77) + samples.astype(">i2").tobytes()


class Sender:
    def __init__(self, receiver: RtpReceiver):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.to = receiver.address
        self.sequence = 0

    def send(self, count: int) -> None:
        for _ in range(count):
            self.sequence += 1
            self.sock.sendto(packet(self.sequence, np.full(320, self.sequence)), self.to)

    def close(self) -> None:
        self.sock.close()


async def settle() -> None:
    """Loopback datagrams are queued by the time the sender returns; one loop turn more."""
    await asyncio.sleep(0)


def counting_wakes(receiver: RtpReceiver) -> list[int]:
    wakes: list[int] = []
    original = receiver._wake
    receiver._wake = lambda: (wakes.append(1), original())     # type: ignore[method-assign]
    return wakes


async def test_what_waits_on_the_socket_reaches_the_consumer_in_one_wake_up() -> None:
    receiver = await RtpReceiver.open()
    sender = Sender(receiver)
    wakes = counting_wakes(receiver)
    sender.send(5)
    await settle()
    receiver.drain()
    assert len(wakes) == 1
    frames = [await receiver.next_frame(1.0) for _ in range(5)]
    assert [np.frombuffer(f, dtype="<i2")[0] for f in frames] == [1, 2, 3, 4, 5]
    assert frames[0] == l16_to_pcm(packet(1, np.full(320, 1))[12:])
    sender.close()
    receiver.close()


async def test_the_poller_delivers_without_being_asked() -> None:
    receiver = await RtpReceiver.open()
    sender = Sender(receiver)
    sender.send(3)
    assert await receiver.next_frame(2.0) is not None      # read by the loop's timer
    assert receiver in RtpPoller.of(asyncio.get_running_loop()).listening
    sender.close()
    receiver.close()
    assert receiver not in RtpPoller.of(asyncio.get_running_loop()).listening


async def test_a_muted_receiver_is_not_read_and_drops_what_queued_meanwhile() -> None:
    receiver = await RtpReceiver.open()
    sender = Sender(receiver)
    poller = RtpPoller.of(asyncio.get_running_loop())
    receiver.mute()
    assert receiver not in poller.listening
    sender.send(4)                                        # audio while the tap is held
    await settle()
    receiver.drain()
    assert await receiver.next_frame(0.01) is None
    receiver.unmute()
    assert receiver in poller.listening
    sender.send(1)
    frame = await receiver.next_frame(2.0)
    assert frame is not None and np.frombuffer(frame, dtype="<i2")[0] == 5   # only the new one
    sender.close()
    receiver.close()


async def test_the_poller_stops_once_nobody_listens() -> None:
    poller = RtpPoller(asyncio.get_running_loop(), interval=0.001)
    receiver = RtpReceiver()
    poller.add(receiver)
    assert poller._timer is not None
    poller.discard(receiver)
    await asyncio.sleep(0.01)
    assert poller._timer is None


async def test_close_keeps_what_had_arrived() -> None:
    receiver = await RtpReceiver.open()
    sender = Sender(receiver)
    sender.send(2)
    await settle()
    receiver.close()
    assert await receiver.next_frame(0.01) is not None and await receiver.next_frame(0.01) is not None
    assert await receiver.next_frame(0.01) is None
    sender.close()
