"""RTP streams as pcap files for sipp's ``play_pcap_audio``: A-law audio and RFC 4733
telephone-events in ONE stream (one SSRC, continuous sequence numbers).

sipp's stock ``dtmf_2833_<d>.pcap`` files each restart their sequence numbers, so a digit
whose file numbers lower than the previous one is dropped by Asterisk as out of order ("21"
arrives as "2"); a caller built on this module sends any digit string intact.
"""
from __future__ import annotations

import numpy as np

ALAW_PAYLOAD_TYPE = 8


def alaw_encode(samples: np.ndarray) -> bytes:
    """16-bit linear PCM -> G.711 A-law (ITU-T G.711, even bits inverted)."""
    pcm = samples.astype(np.int32) >> 3                       # 13-bit magnitude domain
    sign = np.where(pcm >= 0, 0x80, 0x00)
    magnitude = np.minimum(np.where(pcm >= 0, pcm, -pcm - 1), 0x0FFF)
    exponent = np.zeros_like(magnitude)
    for bit in range(7):                                      # segment = position of top bit
        exponent = np.where(magnitude >= (0x20 << bit), bit + 1, exponent)
    mantissa = np.where(exponent == 0, magnitude >> 1, magnitude >> exponent) & 0x0F
    code = (sign | (exponent << 4) | mantissa) ^ 0x55
    return code.astype(np.uint8).tobytes()


def alaw_decode(data: bytes) -> np.ndarray:
    """G.711 A-law -> 16-bit linear PCM (for checks and sniffers)."""
    code = np.frombuffer(data, dtype=np.uint8).astype(np.int32) ^ 0x55
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8,
                         ((mantissa << 4) + 0x108) << np.maximum(exponent - 1, 0))
    return np.where(code & 0x80, magnitude, -magnitude).astype(np.int16)


DTMF_PAYLOAD_TYPE = 101
DTMF_EVENTS = {**{d: int(d) for d in "0123456789"}, "*": 10, "#": 11}
DTMF_PACKETS = 5          # 100 ms tone, then the end packet sent 3 times (RFC 4733 2.5.1.4)


def rtp_pcap(samples: np.ndarray, path, *, dtmf: list[tuple[float, str]] = (), ptime_ms: int = 20,
             src=("10.1.3.143", 4000), dst=("10.1.6.18", 5000)) -> float:
    """Write 8 kHz PCM as a pcap of A-law RTP packets (what sipp's ``play_pcap_audio`` sends).

    ``dtmf``: ``(seconds, digit)`` RFC 4733 telephone-events (payload type 101) replacing the
    audio at those times, in the same RTP stream (one SSRC, continuous sequence numbers), so
    any order of digits arrives.  Ethernet/IPv4/UDP framing like sipp's own ``g711a.pcap``;
    sipp rewrites the addresses and paces packets by their capture times.  Returns the
    audio's length in seconds.
    """
    import struct

    step = 8 * ptime_ms
    padded = np.concatenate([samples.astype(np.int16),
                             np.zeros((-len(samples)) % step, dtype=np.int16)])
    slots = len(padded) // step
    events = _dtmf_slots(dtmf, ptime_ms, step)
    packets = []
    for i in range(slots):
        if i in events:
            packets.extend(events[i])
        else:
            packets.append((ALAW_PAYLOAD_TYPE, i == 0, i * step,
                            alaw_encode(padded[i * step:(i + 1) * step]), i))
    out = [struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)]
    for seq, (pt, marker, timestamp, payload, slot) in enumerate(packets):
        rtp = struct.pack("!BBHII", 0x80, (0x80 if marker else 0) | pt, seq & 0xFFFF,
                          timestamp & 0xFFFFFFFF, 0x43504C54) + payload
        out.append(_pcap_record(rtp, slot * ptime_ms * 1000, seq, src, dst))
    with open(path, "wb") as fh:
        fh.write(b"".join(out))
    return len(padded) / 8000


def _dtmf_slots(dtmf, ptime_ms: int, step: int) -> dict[int, list[tuple]]:
    """Slot index -> the telephone-event packets sent in that slot."""
    import struct

    slots: dict[int, list[tuple]] = {}
    for at, digit in dtmf:
        first = int(round(at * 1000 / ptime_ms))
        event = DTMF_EVENTS[digit]
        for k in range(DTMF_PACKETS):
            end = k == DTMF_PACKETS - 1
            payload = struct.pack("!BBH", event, (0x80 if end else 0) | 10, (k + 1) * step)
            for _ in range(3 if end else 1):
                slots.setdefault(first + k, []).append(
                    (DTMF_PAYLOAD_TYPE, k == 0, first * step, payload, first + k))
    return slots


def _pcap_record(rtp: bytes, usec: int, ident: int, src, dst) -> bytes:
    import socket
    import struct

    udp = struct.pack("!HHHH", src[1], dst[1], 8 + len(rtp), 0) + rtp
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident & 0xFFFF, 0x4000, 64, 17, 0,
                     socket.inet_aton(src[0]), socket.inet_aton(dst[0]))
    frame = b"\x00\x01\x02\x03\x04\x05\x00\x06\x07\x08\x09\x0a\x08\x00" + ip + udp
    return struct.pack("<IIII", 1_700_000_000 + usec // 1_000_000, usec % 1_000_000,
                       len(frame), len(frame)) + frame
