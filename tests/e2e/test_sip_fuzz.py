"""Malformed SIP against the running (isolated) Asterisk instance, then a normal call that
must succeed: random datagrams, requests missing each mandatory header, a huge Via, bogus
Content-Length values, broken request lines.  Sent from the trunk address (identified as the
carrier) and from an unknown address (challenged), over UDP, the transport PJSIP listens on.
"""
from __future__ import annotations

import asyncio
import random
import socket
import uuid

import pytest

from callpilot.infra.asterisk import runner
from tests.e2e.serve_proc import wait_record
from tests.e2e.test_call_path import caller_number, make_caller

pytestmark = pytest.mark.e2e

MANDATORY = ["Via", "From", "To", "Call-ID", "CSeq", "Max-Forwards", "Contact"]


@pytest.fixture
def cfg(e2e_config, asterisk):
    return e2e_config


def invite(host: str, port: int, src: str, *, drop: str = "", via: str | None = None,
           content_length: str | None = None, body: str = "v=0\r\n") -> bytes:
    branch = "z9hG4bK" + uuid.uuid4().hex
    headers = {
        "Via": via or f"SIP/2.0/UDP {src}:5999;branch={branch};rport",
        "From": f"<sip:15550009@{src}>;tag={uuid.uuid4().hex[:8]}",
        "To": f"<sip:800@{host}:{port}>",
        "Call-ID": uuid.uuid4().hex,
        "CSeq": "1 INVITE",
        "Max-Forwards": "70",
        "Contact": f"<sip:15550009@{src}:5999>",
        "Content-Type": "application/sdp",
        "Content-Length": content_length if content_length is not None else str(len(body)),
    }
    lines = [f"INVITE sip:800@{host}:{port} SIP/2.0"]
    lines += [f"{k}: {v}" for k, v in headers.items() if k != drop]
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


def malformed(host: str, port: int, src: str, rng: random.Random) -> list[bytes]:
    out = [bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 1400))) for _ in range(150)]
    out += [invite(host, port, src, drop=h) for h in MANDATORY]
    out.append(invite(host, port, src, via="SIP/2.0/UDP " + "a" * 60_000 + ";branch=z9hG4bKx"))
    out.append(invite(host, port, src, via=", ".join(f"SIP/2.0/UDP 10.0.0.{i % 250}:5060;branch="
                                                     f"z9hG4bK{i}" for i in range(2000))))
    for length in ("999999", "-1", "abc", "4294967296", "", "0"):
        out.append(invite(host, port, src, content_length=length, body="v=0\r\no=- 1 1 IN IP4 x\r\n"))
    out += [b"INVITE\r\n\r\n", b"INVITE sip:800 SIP/9.9\r\n\r\n", b"SIP/2.0 200 OK\r\n\r\n",
            b"OPTIONS sip:x SIP/2.0\r\nVia: garbage\r\n\r\n", b"\r\n\r\n\r\n", b"\x00" * 512,
            invite(host, port, src).replace(b"INVITE sip", b"FROBNICATE sip", 1),
            invite(host, port, src)[:120]]
    rng.shuffle(out)
    return out


def send_all(datagrams: list[bytes], src: str, host: str, port: int) -> int:
    sent = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((src, 0))
        for data in datagrams:
            try:
                sock.sendto(data, (host, port))
                sent += 1
            except OSError:         # e.g. EMSGSIZE: the kernel refuses, nothing reached Asterisk
                pass
    return sent


async def test_malformed_sip_then_a_normal_call_succeeds(cfg, serve):
    a = cfg.asterisk
    pid = runner.asterisk_pid(cfg)
    rng = random.Random(9)                  # the same garbage every run
    sent = 0
    for src in (a.trunk_ips[0], "127.0.0.9"):
        sent += send_all(malformed(a.sip_host, a.sip_port, src, rng), src, a.sip_host, a.sip_port)
        await asyncio.sleep(0.5)
    assert sent > 300
    await asyncio.sleep(2)
    assert runner.asterisk_pid(cfg) == pid and runner.status(cfg) == "up"
    number = caller_number()
    result = await make_caller(cfg, number, dtmf="1", hold=4).run()
    assert result.status == 200 and result.answered, result
    record = await wait_record(cfg, number, timeout=30)
    assert record.flow == "main" and record.menu_path[:1] == ["main_menu=1"]
    status = await serve.status()
    assert status["ari"] == "connected"
