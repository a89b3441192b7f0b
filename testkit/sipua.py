"""Real SIP user agents for tests, benchmarks and ``callpilot call``, driven by sipp.

Every UA runs one sipp process with an XML scenario generated into a private temp dir.
Scenarios ``<log>`` what happens (``EV <name> <call> <clock ms> <detail>``) and the log
file is followed while sipp runs, so callers can await events instead of sleeping.

* :func:`register` / :func:`register_async` - one REGISTER (401 challenge answered).
* :class:`AgentPhone` - registers, then answers/ignores/rejects INVITEs as an agent phone.
* :class:`Caller` - a carrier caller: INVITE with PCMA + telephone-event, audio from a
  pcap, RFC 2833 DTMF from sipp's pcaps, BYE after ``hold_seconds`` unless the far end
  hangs up first.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import signal
import struct
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

from testkit.ports import free_port, media_port  # noqa: F401  (re-exported)
from testkit.rtp_pcap import DTMF_EVENTS

logger = logging.getLogger(__name__)

SIPP = os.environ.get("CALLPILOT_SIPP", "sipp")
PCAP_DIR = Path("/usr/share/sip-tester")
G711A_PCAP = PCAP_DIR / "g711a.pcap"
DTMF_NAMES = {**{d: d for d in "0123456789"}, "*": "star", "#": "pound"}
DTMF_GAP_MS = 250            # one sipp DTMF pcap lasts 140 ms
POLL_SECONDS = 0.05
BEHAVIOURS = ("answer", "no_answer", "busy", "hangup")
# final INVITE/REGISTER responses a scenario accepts besides 200 (each ends the call)
FAILURE_CODES = (400, 401, 403, 404, 405, 407, 408, 410, 415, 420, 480, 481, 484, 486,
                 487, 488, 500, 501, 502, 503, 504, 603)


class SipUaError(RuntimeError):
    """sipp could not be started or a UA did not reach the expected state."""


# --- ports: testkit.ports (re-exported: free_port, media_port) ---------------------------


def pcap_seconds(path: Path) -> float:
    """Duration of a (little-endian, classic) pcap file: last minus first packet time."""
    data = Path(path).read_bytes()
    offset, stamps = 24, []
    while offset + 16 <= len(data):
        sec, usec, incl, _orig = struct.unpack("<IIII", data[offset:offset + 16])
        stamps.append(sec + usec / 1e6)
        offset += 16 + incl
    return stamps[-1] - stamps[0] if len(stamps) > 1 else 0.0


# --- results ----------------------------------------------------------------------------


@dataclass
class SipEvent:
    name: str
    call: int
    clock_ms: int
    detail: str = ""


@dataclass
class SippOutcome:
    returncode: int | None
    stderr_tail: str
    stats: dict[str, str]
    workdir: Path


@dataclass
class CallResult:
    status: int | None          # final INVITE response code (None: no final response)
    answered: bool
    ended_by: str | None        # "caller" | "remote" | None (never answered)
    duration: float             # seconds from 200 OK to the end of the call
    returncode: int | None      # sipp exit code
    stderr_tail: str
    events: list[SipEvent] = field(default_factory=list)
    stats: dict[str, str] = field(default_factory=dict)


# --- sipp process --------------------------------------------------------------------------


class SippProcess:
    """One sipp run: scenario file, log following, kill on cancel, parsed results."""

    def __init__(self, name: str, scenario: str, args: list[str], timeout: float,
                 stop_after: tuple[str, int] | None = None):
        self.name = name
        self.scenario = scenario
        self.args = args
        self.timeout = timeout
        self.stop_after = stop_after       # (event, count): SIGTERM sipp once seen
        self.workdir: Path | None = None   # created by start()
        self.events: list[SipEvent] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._log_offset = 0
        self._changed = asyncio.Event()
        self._follower: asyncio.Task | None = None

    @property
    def log_file(self) -> Path:
        return self.workdir / "events.log"

    def argv(self) -> list[str]:
        w = self.workdir
        return [SIPP, *self.args, "-sf", str(w / "scenario.xml"), "-nostdin",
                "-timeout", f"{int(self.timeout)}s", "-trace_logs", "-log_file",
                str(self.log_file), "-trace_err", "-error_file", str(w / "errors.log"),
                "-trace_stat", "-stf", str(w / "stats.csv"), "-fd", "1"]

    async def start(self) -> None:
        self.workdir = Path(tempfile.mkdtemp(prefix=f"callpilot-sipp-{self.name}-"))
        (self.workdir / "scenario.xml").write_text(self.scenario)
        argv = self.argv()
        logger.debug("sipp %s: %s", self.name, " ".join(argv))
        out = open(self.workdir / "stdout.txt", "wb")
        err = open(self.workdir / "stderr.txt", "wb")
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=self.workdir,
                start_new_session=True)
        except FileNotFoundError as exc:
            raise SipUaError(f"sipp not found ({SIPP}); apt-get install sip-tester") from exc
        finally:
            out.close()
            err.close()
        self._follower = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        while True:
            self._read_events()
            if self.proc is None or self.proc.returncode is not None:
                self._read_events()
                self._changed.set()
                return
            await asyncio.sleep(POLL_SECONDS)

    def _read_events(self) -> None:
        try:
            with open(self.log_file, "rb") as fh:
                fh.seek(self._log_offset)
                chunk = fh.read()
        except FileNotFoundError:
            return
        end = chunk.rfind(b"\n") + 1
        if end == 0:
            return
        self._log_offset += end
        for line in chunk[:end].decode(errors="replace").splitlines():
            event = _parse_event(line)
            if event is not None:
                self.events.append(event)
                self._changed.set()
                self._maybe_stop(event)

    def _maybe_stop(self, event: SipEvent) -> None:
        if self.stop_after is None or event.name != self.stop_after[0]:
            return
        if sum(1 for e in self.events if e.name == event.name) >= self.stop_after[1]:
            logger.debug("sipp %s: %s x%d seen, stopping", self.name, *self.stop_after)
            self.kill_now(signal.SIGTERM)

    async def wait_event(self, name: str, timeout: float, count: int = 1) -> SipEvent:
        """The ``count``-th event called ``name``; SipUaError on timeout or sipp exit."""
        deadline = time.monotonic() + timeout
        while True:
            found = [e for e in self.events if e.name == name]
            if len(found) >= count:
                return found[count - 1]
            if self.finished:
                raise SipUaError(f"sipp {self.name} exited ({self.proc.returncode}) before "
                                 f"{name!r}; events {self.event_names()}\n{self.stderr_tail()}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise SipUaError(f"sipp {self.name}: no {name!r} within {timeout:.1f} s; "
                                 f"events {self.event_names()}")
            self._changed.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), remaining)

    def event_names(self) -> list[str]:
        return [e.name for e in self.events]

    @property
    def finished(self) -> bool:
        return self.proc is not None and self.proc.returncode is not None \
            and (self._follower is None or self._follower.done())

    async def wait(self, timeout: float | None = None) -> int:
        """Wait for sipp to exit by itself (killed after ``timeout``)."""
        assert self.proc is not None, "start() first"
        limit = self.timeout + 10 if timeout is None else timeout
        try:
            await asyncio.wait_for(self.proc.wait(), limit)
        except asyncio.TimeoutError:
            logger.warning("sipp %s still running after %.0f s; killing", self.name, limit)
            await self.kill()
        if self._follower is not None:
            await self._follower
        return self.proc.returncode

    async def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)
        try:
            await asyncio.wait_for(asyncio.shield(self.proc.wait()), 5)
        except asyncio.TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            await self.proc.wait()
        if self._follower is not None:
            await self._follower

    def kill_now(self, sig: int = signal.SIGKILL) -> None:
        """Signal sipp without waiting (cancellation paths, finalizers, stop_after)."""
        if self.proc is not None and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stderr_tail(self, lines: int = 15) -> str:
        if self.workdir is None:
            return ""
        parts = []
        for name in ("stderr.txt", "errors.log"):
            path = self.workdir / name
            if path.exists():
                text = path.read_text(errors="replace").strip().splitlines()[-lines:]
                if text:
                    parts.append("\n".join(text))
        return "\n".join(parts)

    def stats(self) -> dict[str, str]:
        return _parse_stats(self.workdir / "stats.csv") if self.workdir else {}

    def outcome(self) -> SippOutcome:
        return SippOutcome(self.proc.returncode if self.proc else None, self.stderr_tail(),
                           self.stats(), self.workdir)

    def cleanup(self) -> None:
        if self.workdir is None:
            return
        if os.environ.get("CALLPILOT_KEEP_SIPP"):
            logger.info("sipp %s files kept in %s", self.name, self.workdir)
            return
        shutil.rmtree(self.workdir, ignore_errors=True)


_EVENT = re.compile(r"^EV (\S+) (\d+) (\d+) ?(.*)$")


def _parse_event(line: str) -> SipEvent | None:
    match = _EVENT.match(line.strip())
    if not match:
        return None
    return SipEvent(match[1], int(match[2]), int(match[3]), match[4].strip())


def _parse_stats(path: Path) -> dict[str, str]:
    try:
        rows = [r for r in path.read_text(errors="replace").splitlines() if r.strip()]
    except FileNotFoundError:
        return {}
    if len(rows) < 2:
        return {}
    header, last = rows[0].split(";"), rows[-1].split(";")
    return {k: v for k, v in zip(header, last) if k}


# --- scenario building blocks ---------------------------------------------------------------


def _log(name: str, detail: str = "") -> str:
    return f'<log message="EV {name} [call_number] [clock_tick] {escape(detail)}"/>'


def _status_action(name: str) -> str:
    return ('<action><ereg regexp="^SIP/2\\.0 ([0-9]+)" search_in="msg" '
            f'assign_to="m,st"/>{_log(name, "[$st]")}</action>')


def _recv_status(code: int, name: str, nxt: str, optional: bool = True,
                 extra: str = "") -> str:
    opt = ' optional="true"' if optional else ""
    return f'<recv response="{code}"{opt} next="{nxt}"{extra}>{_status_action(name)}</recv>'


def _nop(actions: str, nxt: str | None = None) -> str:
    jump = f' next="{nxt}"' if nxt else ""
    return f"<nop{jump}><action>{actions}</action></nop>" if actions else f"<nop{jump}/>"


def _play(pcap: Path) -> str:
    return _nop(f'<exec play_pcap_audio="{escape(str(pcap))}"/>')


def _msg(headers: str, body: str = "") -> str:
    """A SIP message for sipp: start line + headers (blank lines dropped), blank, body."""
    head = [line.strip() for line in headers.splitlines() if line.strip()]
    text = "\n".join(head) + "\n\n"
    lines = [line.strip() for line in body.splitlines() if line.strip()]
    if lines:
        text += "\n".join(lines) + "\n\n"
    return "<![CDATA[\n" + text + "]]>"


def _sdp(session: str) -> str:
    return f"""
        v=0
        o=- 1 1 IN IP[local_ip_type] [local_ip]
        s={session}
        c=IN IP[media_ip_type] [media_ip]
        t=0 0
        m=audio [media_port] RTP/AVP 8 0 101
        a=rtpmap:8 PCMA/8000
        a=rtpmap:0 PCMU/8000
        a=rtpmap:101 telephone-event/8000
        a=fmtp:101 0-16
        a=sendrecv
    """


def _scenario(name: str, body: list[str]) -> str:
    return ('<?xml version="1.0" encoding="ISO-8859-1" ?>\n'
            f'<scenario name="{escape(name)}">\n' + "\n".join(body) + "\n</scenario>\n")


# --- REGISTER -----------------------------------------------------------------------------


def register_scenario(ext: str, password: str | None, expires: int, contact: str = "") -> str:
    """REGISTER, answer one 401 challenge (unless ``password`` is None), log the result."""
    contact = contact or f"<sip:{ext}@[local_ip]:[local_port]>"

    def register(cseq: int, auth: str) -> str:
        return f"""<send retrans="500">{_msg(f'''
            REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
            Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
            From: <sip:{ext}@[remote_ip]>;tag=[pid]SIPpTag00[call_number]
            To: <sip:{ext}@[remote_ip]>
            Call-ID: [call_id]
            CSeq: {cseq} REGISTER
            Contact: {contact}
            {auth}
            Max-Forwards: 70
            Expires: {expires}
            User-Agent: CallPilot-sipua
            Content-Length: 0
        ''')}</send>"""

    body = [register(1, ""), '<recv response="100" optional="true"/>']
    failures = [c for c in FAILURE_CODES if c != 401]
    body += [_recv_status(c, "final", "done") for c in failures]
    if password is None:
        body.append(_recv_status(401, "final", "done"))
    else:
        body.append(f'<recv response="401" optional="true" auth="true" next="auth">'
                    f'{_status_action("challenge")}</recv>')
    body += [_recv_status(200, "final", "done", optional=False), '<label id="auth"/>']
    if password is not None:
        auth = f"[authentication username={ext} password={escape(password)}]"
        body += [register(2, auth), '<recv response="100" optional="true"/>']
        body += [_recv_status(c, "final", "done") for c in FAILURE_CODES]
        body.append(_recv_status(200, "final", "done", optional=False))
    body.append('<label id="done"/>')
    return _scenario(f"register-{ext}", body)


async def register_async(server_host: str, server_port: int, ext: str, password: str | None,
                         local_ip: str = "127.0.0.1", local_port: int | None = None,
                         expires: int = 3600, timeout: float = 10.0,
                         contact: str = "") -> int:
    """Send one REGISTER; return the final SIP status (200 = registered, 0 = none)."""
    port = local_port or free_port(local_ip)
    sipp = SippProcess(f"reg-{ext}", register_scenario(ext, password, expires, contact),
                       [f"{server_host}:{server_port}", "-i", local_ip, "-p", str(port),
                        "-m", "1", "-mi", local_ip, "-mp", str(media_port(local_ip))],
                       timeout)
    try:
        await sipp.start()
        await sipp.wait()
    finally:
        sipp.kill_now()
    finals = [e for e in sipp.events if e.name == "final"]
    status = int(finals[-1].detail) if finals else 0
    logger.info("REGISTER %s (expires %s) -> %s", ext, expires, status or "no response")
    if not finals:
        logger.warning("REGISTER %s: no final response\n%s", ext, sipp.stderr_tail())
    sipp.cleanup()
    return status


def register(server_host: str, server_port: int, ext: str, password: str | None,
             local_ip: str = "127.0.0.1", local_port: int | None = None,
             expires: int = 3600, timeout: float = 10.0) -> int:
    """Blocking :func:`register_async` (for scripts; use the async form inside a loop)."""
    return asyncio.run(register_async(server_host, server_port, ext, password, local_ip,
                                      local_port, expires, timeout))


# --- agent phone (UAS) -------------------------------------------------------------------------

_REPLY_HEADERS = """
    [last_Via:]
    [last_From:]
    {to}
    [last_Call-ID:]
    {cseq}
    Contact: <sip:{ext}@[local_ip]:[local_port];transport=[transport]>
    User-Agent: CallPilot-sipua
"""


def _reply(status: str, ext: str, to: str = "[last_To:]", cseq: str = "[last_CSeq:]",
           sdp: bool = False, retrans: bool = False) -> str:
    headers = f"SIP/2.0 {status}\n" + _REPLY_HEADERS.format(to=to, cseq=cseq, ext=ext)
    if sdp:
        headers += "Content-Type: application/sdp\nContent-Length: [len]\n"
    else:
        headers += "Content-Length: 0\n"
    attr = ' retrans="500"' if retrans else ""
    return f"<send{attr}>{_msg(headers, _sdp('callpilot-agent') if sdp else '')}</send>"


def agent_scenario(ext: str, behaviour: str, answer_delay: float, talk_audio: Path,
                   talk_seconds: float = 3.0) -> str:
    """UAS scenario for one call (sipp restarts it for every new INVITE).

    ``hangup``: answer like ``answer``, then send BYE after ``talk_seconds`` (the phone hangs
    up first).  The ``invite`` event's detail is the dialled user of the Request-URI."""
    if behaviour not in BEHAVIOURS:
        raise ValueError(f"behaviour must be one of {BEHAVIOURS}, not {behaviour!r}")
    tag = "[last_To:];tag=[pid]SIPpTag01[call_number]"
    # the INVITE's CSeq number is kept for a 487 after CANCEL (sipp rejects unused variables)
    keep = "" if behaviour == "busy" else \
        '<ereg regexp="[0-9]+" search_in="hdr" header="CSeq:" assign_to="cseq"/>'
    if behaviour == "hangup":
        keep += _BYE_CAPTURE
    # the first "sip:..." of the message is the Request-URI (sipp refuses an unused group var)
    dialled = '<ereg regexp="sip:[^@;> ]+" search_in="msg" assign_to="dialled"/>'
    body = [f'<recv request="INVITE" crlf="true"><action>{dialled}{keep}'
            f'{_log("invite", "[$dialled]")}</action></recv>']
    if behaviour == "busy":
        body += [_reply("486 Busy Here", ext, to=tag), '<recv request="ACK"/>',
                 _nop(_log("busy") + _log("done"))]
        return _scenario(f"agent-{ext}-busy", body)
    if behaviour == "no_answer":
        body += [_reply("100 Trying", ext), _reply("180 Ringing", ext, to=tag),
                 _nop(_log("ringing")),
                 f'<recv request="CANCEL"><action>{_log("cancel")}</action></recv>']
        body += _cancelled(ext, tag) + ['<label id="end"/>', _nop(_log("done"))]
        return _scenario(f"agent-{ext}-no-answer", body)
    # sipp looks for optional="global" receivers only BEHIND the current step, so the
    # re-INVITE and CANCEL handlers come first and the call jumps over them
    body.append(_nop("", nxt="ring"))
    handlers = [("INVITE", "reinvite"), ("CANCEL", "cancel")]
    if behaviour == "hangup":
        handlers.append(("BYE", "remote_bye"))
    body += _global_handlers(handlers)
    body += ['<label id="reinvite"/>', _reply("200 OK", ext, sdp=True, retrans=True),
             '<recv request="ACK" next="wait_bye"/>', '<label id="cancel"/>']
    body += _cancelled(ext, tag)
    if behaviour == "hangup":
        body += ['<label id="remote_bye"/>', _reply("200 OK", ext), _nop(_log("bye"), nxt="end")]
    body += ['<label id="ring"/>', _reply("100 Trying", ext),
             _reply("180 Ringing", ext, to=tag), _nop(_log("ringing"))]
    if answer_delay > 0:
        body.append(f'<pause milliseconds="{int(answer_delay * 1000)}"/>')
    body += [_reply("200 OK", ext, to=tag, sdp=True, retrans=True),
             '<recv request="ACK" crlf="true"/>',
             _nop(f'{_log("answered")}<exec play_pcap_audio="{escape(str(talk_audio))}"/>')]
    if behaviour == "hangup":
        body += [f'<pause milliseconds="{int(talk_seconds * 1000)}"/>', _nop(_log("hangup")),
                 f'<send retrans="500">{_msg(_UAS_BYE)}</send>', '<recv response="200"/>',
                 _nop(_log("hungup"), nxt="end")]
    body += ['<label id="wait_bye"/>',
             f'<recv request="BYE"><action>{_log("bye")}</action></recv>',
             _reply("200 OK", ext), '<label id="end"/>', _nop(_log("done"))]
    return _scenario(f"agent-{ext}-{behaviour}", body)


# a phone hanging up: Request-URI = the INVITE's Contact, From/To swapped (our tag kept)
_BYE_CAPTURE = ('<ereg regexp="sip:[^>;]+" search_in="hdr" header="Contact:" assign_to="peer"/>'
                '<ereg regexp=".*" search_in="hdr" header="From:" assign_to="peer_from"/>'
                '<ereg regexp=".*" search_in="hdr" header="To:" assign_to="own_to"/>')
_UAS_BYE = """
    BYE [$peer] SIP/2.0
    Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
    From: [$own_to];tag=[pid]SIPpTag01[call_number]
    To: [$peer_from]
    Call-ID: [call_id]
    CSeq: 1 BYE
    Max-Forwards: 70
    Content-Length: 0
"""


def _global_handlers(requests: list[tuple[str, str]]) -> list[str]:
    """``optional="global"`` receivers: entered from any point of the call, each jumping
    to the label of its name (the event is logged under that name too).

    sipp searches them only among the steps BEFORE the current one: place them early and
    jump over them.  sipp also refuses a <send>/<nop>/<pause> right after an optional
    <recv>, so a mandatory <recv> of a method nobody sends closes the group."""
    recvs = [f'<recv request="{method}" optional="global" next="{label}">'
             f'<action>{_log(label)}</action></recv>' for method, label in requests]
    return recvs + ['<recv request="X-CALLPILOT-NEVER"/>']


def _cancelled(ext: str, tag: str) -> list[str]:
    """200 to the CANCEL, 487 to the INVITE (CSeq kept from it), wait for its ACK."""
    return [_reply("200 OK", ext),
            _reply("487 Request Terminated", ext, to=tag, cseq="CSeq: [$cseq] INVITE"),
            '<recv request="ACK"/>', _nop(_log("cancelled"), nxt="end")]


class AgentPhone:
    """A registered agent phone: ``await start()``, calls happen, ``await stop()``.

    ``behaviour``: ``answer`` (180, 200 after ``answer_delay``, plays ``talk_audio``, waits
    for BYE; re-INVITEs and CANCEL handled), ``no_answer`` (rings until CANCEL: 200 + 487)
    or ``busy`` (486).  OPTIONS pings (qualify) are answered.  After ``calls`` calls sipp
    stops.  Await events with :meth:`wait_for`: ``invite``, ``ringing``, ``answered``,
    ``bye``, ``cancel``, ``cancelled``, ``busy``, ``reinvite``, ``done`` (a call ended)."""

    def __init__(self, ext: str, password: str, server_host: str = "127.0.0.1",
                 server_port: int = 5060, local_ip: str = "127.0.0.1",
                 local_port: int | None = None, behaviour: str = "answer",
                 answer_delay: float = 0.5, talk_audio: Path = G711A_PCAP, calls: int = 1,
                 timeout: float = 300.0, expires: int = 3600, talk_seconds: float = 3.0):
        self.ext, self.password = ext, password
        self.server_host, self.server_port = server_host, server_port
        self.local_ip = local_ip
        self.local_port = local_port or free_port(local_ip)
        self.behaviour, self.answer_delay = behaviour, answer_delay
        self.talk_audio, self.calls = talk_audio, calls
        self.timeout, self.expires = timeout, expires
        self.talk_seconds = talk_seconds
        self.register_status: int | None = None
        self._sipp: SippProcess | None = None
        self._outcome: SippOutcome | None = None

    async def start(self) -> None:
        """Register (raises SipUaError unless 200), then listen for INVITEs."""
        self.register_status = await self._register()
        if self.register_status != 200:
            raise SipUaError(f"agent {self.ext}: REGISTER -> {self.register_status}")
        scenario = agent_scenario(self.ext, self.behaviour, self.answer_delay, self.talk_audio,
                                  self.talk_seconds)
        self._sipp = SippProcess(
            f"agent-{self.ext}", scenario,
            # no -m: sipp counts every auto-answered OPTIONS (-aa) as a call, so the
            # phone counts its calls itself ("done" events) and stops sipp after them
            ["-i", self.local_ip, "-p", str(self.local_port),
             "-mi", self.local_ip, "-mp", str(media_port(self.local_ip)), "-aa"],
            self.timeout, stop_after=("done", self.calls))
        await self._sipp.start()
        await _wait_udp_bound(self.local_port, self._sipp)
        logger.info("agent phone %s ready on %s:%s (%s)", self.ext, self.local_ip,
                    self.local_port, self.behaviour)

    async def _register(self) -> int:
        return await register_async(self.server_host, self.server_port, self.ext, self.password,
                                    self.local_ip, self.local_port, self.expires)

    @property
    def dialled(self) -> list[str]:
        """The Request-URI user of every INVITE received (what the far end dialled)."""
        return [e.detail.removeprefix("sip:") for e in self.events if e.name == "invite"]

    async def wait_for(self, event: str, timeout: float = 10.0, count: int = 1) -> SipEvent:
        """Await ``invite``, ``ringing``, ``answered``, ``bye``, ``cancel``, ``busy``..."""
        return await self._require().wait_event(event, timeout, count)

    async def wait_done(self, timeout: float = 60.0) -> int:
        """Wait until the phone handled its ``calls`` calls (sipp then stops by itself);
        return the number of calls handled."""
        sipp = self._require()
        await sipp.wait_event("done", timeout, count=self.calls)
        await sipp.wait(timeout=10)
        return self.count("done")

    async def stop(self) -> None:
        """Stop listening (SIGTERM to sipp if it still runs) and remove sipp's temp files;
        events, exit code and stats stay readable."""
        if self._sipp is None or self._outcome is not None:
            return
        await self._sipp.kill(signal.SIGTERM)
        self._outcome = self._sipp.outcome()
        self._sipp.cleanup()

    async def unregister(self) -> int:
        """REGISTER with Expires: 0 and Contact: * (removes the binding); final status."""
        return await register_async(self.server_host, self.server_port, self.ext,
                                    self.password, self.local_ip, None, expires=0,
                                    contact="*")

    def _require(self) -> SippProcess:
        if self._sipp is None:
            raise SipUaError(f"agent {self.ext}: start() first")
        return self._sipp

    @property
    def events(self) -> list[SipEvent]:
        return list(self._sipp.events) if self._sipp else []

    def count(self, name: str) -> int:
        return sum(1 for e in self.events if e.name == name)

    @property
    def invite_received(self) -> bool:
        return self.count("invite") > 0

    @property
    def answered(self) -> bool:
        return self.count("answered") > 0

    @property
    def bye_received(self) -> bool:
        return self.count("bye") > 0

    @property
    def cancel_received(self) -> bool:
        return self.count("cancel") > 0

    @property
    def returncode(self) -> int | None:
        return self._sipp.proc.returncode if self._sipp and self._sipp.proc else None

    def outcome(self) -> SippOutcome:
        """sipp's exit code, stderr tail and stats (final once stopped)."""
        return self._outcome or self._require().outcome()

    async def __aenter__(self) -> "AgentPhone":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


class FarEnd(AgentPhone):
    """A UAS that does not register: a number behind a carrier trunk (e.g. an outside desk
    reached through an outbound route).  Listens on ``local_ip:local_port``; same behaviours
    and events as :class:`AgentPhone`; :attr:`dialled` tells which number was called."""

    def __init__(self, name: str, local_ip: str, local_port: int, **kwargs):
        super().__init__(name, "", local_ip=local_ip, local_port=local_port, **kwargs)

    async def _register(self) -> int:
        return 200          # nothing to register with: the trunk's contact is this address

    async def unregister(self) -> int:
        return 200


async def _wait_udp_bound(port: int, sipp: SippProcess, timeout: float = 5.0) -> None:
    """Until sipp has bound its SIP port (read from /proc/net/udp)."""
    deadline = time.monotonic() + timeout
    needle = f":{port:04X} "
    while time.monotonic() < deadline:
        if sipp.finished or (sipp.proc and sipp.proc.returncode is not None):
            raise SipUaError(f"sipp {sipp.name} exited ({sipp.proc.returncode}) at start\n"
                             f"{sipp.stderr_tail()}")
        table = Path("/proc/net/udp").read_text()
        if any(needle in line.split("rem_address")[0] for line in table.splitlines()[1:]):
            return
        await asyncio.sleep(POLL_SECONDS)
    raise SipUaError(f"sipp {sipp.name} did not bind UDP port {port} within {timeout} s")


# --- caller (UAC) ----------------------------------------------------------------------------


def caller_scenario(did: str, from_number: str, dtmf: str, dtmf_delay: float,
                    hold_seconds: float, answer_timeout: float, audio: Path,
                    auth: tuple[str, str] | None = None, dtmf_pcap: Path | None = None) -> str:
    """INVITE the DID; on 200 ACK, audio, DTMF, more audio, BYE after ``hold_seconds``.

    With ``auth`` (user, password) a 401/407 challenge is answered once with a second
    INVITE (CSeq 2), as a registered phone does."""
    for digit in dtmf:
        if digit not in DTMF_NAMES:
            raise ValueError(f"DTMF digit {digit!r} not supported (0-9 * #)")
    phases = (1, 2) if auth else (1,)
    body = []
    for cseq in phases:
        body += _invite_phase(did, from_number, cseq, answer_timeout,
                              auth=auth if cseq == 2 else None, challenged=bool(auth))
    for cseq in phases:
        body += _caller_rejected(did, cseq) + _caller_no_answer(did, cseq)
        body += _caller_ack_2xx(from_number, cseq)
    # the far end may hang up at any point after the answer: BYE -> 200 OK, call over.
    # (global receivers must precede the steps they serve, see _global_handlers)
    body += _global_handlers([("BYE", "remote_bye")])
    body += ['<label id="remote_bye"/>', _reply("200 OK", "caller"),
             _nop(_log("ended", "remote"), nxt="end")]
    body += _caller_talk(from_number, dtmf, dtmf_delay, hold_seconds, audio, dtmf_pcap)
    body.append('<label id="end"/>')
    return _scenario(f"caller-{did}", body)


def _invite_phase(did: str, from_number: str, cseq: int, answer_timeout: float,
                  auth: tuple[str, str] | None, challenged: bool) -> list[str]:
    """Send INVITE (CSeq ``cseq``) and branch on its final response."""
    credentials = ""
    if auth:
        credentials = f"[authentication username={escape(auth[0])} password={escape(auth[1])}]"
    invite = f"""
        INVITE sip:{did}@[remote_ip]:[remote_port] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "{from_number}" <sip:{from_number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        To: <sip:{did}@[remote_ip]:[remote_port]>
        Call-ID: [call_id]
        CSeq: {cseq} INVITE
        Contact: <sip:{from_number}@[local_ip]:[local_port];transport=[transport]>
        {credentials}
        Max-Forwards: 70
        User-Agent: CallPilot-sipua
        Content-Type: application/sdp
        Content-Length: [len]
    """
    # no <nop> between a <send> and its responses: a response arriving before sipp ran
    # the nop would be "unexpected".  sipp arms a recv's timeout only while that recv is
    # the current step, and after a provisional response the current step is that
    # optional recv: every step waiting for the answer carries the answer timeout.
    wait = f' timeout="{int(answer_timeout * 1000)}" ontimeout="no_answer{cseq}"'
    steps = [_ack_non2xx(did, 1)] if cseq == 2 else []
    steps += [_nop(_log("invite", str(cseq))),
              f'<send retrans="500">{_msg(invite, _sdp("callpilot-caller"))}</send>',
              f'<recv response="100" optional="true"{wait}/>',
              f'<recv response="180" optional="true"{wait}><action>{_log("ringing")}'
              '</action></recv>',
              f'<recv response="183" optional="true"{wait}><action>{_log("progress")}'
              '</action></recv>']
    for code in FAILURE_CODES:
        if challenged and cseq == 1 and code in (401, 407):
            steps.append(f'<recv response="{code}" optional="true" auth="true" '
                         f'next="auth"{wait}>{_status_action("challenge")}</recv>')
        else:
            steps.append(_recv_status(code, "final", f"rejected{cseq}", extra=wait))
    steps.append(_recv_status(200, "final", f"answered{cseq}", optional=False,
                              extra=f' rrs="true"{wait}'))
    return (['<label id="auth"/>'] if cseq == 2 else []) + steps


def _ack_non2xx(did: str, cseq: int) -> str:
    return f"""<send>{_msg(f'''
        ACK sip:{did}@[remote_ip]:[remote_port] SIP/2.0
        [last_Via:]
        [last_From:]
        [last_To:]
        [last_Call-ID:]
        CSeq: {cseq} ACK
        Max-Forwards: 70
        Content-Length: 0
    ''')}</send>"""


def _caller_rejected(did: str, cseq: int) -> list[str]:
    return [f'<label id="rejected{cseq}"/>', _ack_non2xx(did, cseq),
            _nop(_log("rejected"), nxt="end")]


def _caller_no_answer(did: str, cseq: int) -> list[str]:
    cancel = f"""
        CANCEL sip:{did}@[remote_ip]:[remote_port] SIP/2.0
        [last_Via:]
        [last_From:]
        To: <sip:{did}@[remote_ip]:[remote_port]>
        [last_Call-ID:]
        CSeq: {cseq} CANCEL
        Max-Forwards: 70
        Content-Length: 0
    """
    return [f'<label id="no_answer{cseq}"/>', _nop(_log("cancel")),
            f'<send>{_msg(cancel)}</send>', '<recv response="200" optional="true"/>',
            f'<recv response="487">{_status_action("final")}</recv>',
            _ack_non2xx(did, cseq), _nop(_log("rejected"), nxt="end")]


def _caller_ack_2xx(from_number: str, cseq: int) -> list[str]:
    ack = f"""
        ACK [next_url] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "{from_number}" <sip:{from_number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        [last_To:]
        Call-ID: [call_id]
        CSeq: {cseq} ACK
        [routes]
        Contact: <sip:{from_number}@[local_ip]:[local_port];transport=[transport]>
        Max-Forwards: 70
        Content-Length: 0
    """
    return [f'<label id="answered{cseq}"/>', f"<send>{_msg(ack)}</send>",
            _nop(_log("answered"), nxt="talk")]


def _caller_talk(from_number: str, dtmf: str, dtmf_delay: float, hold_seconds: float,
                 audio: Path, dtmf_pcap: Path | None) -> list[str]:
    bye = f"""
        BYE [next_url] SIP/2.0
        Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
        From: "{from_number}" <sip:{from_number}@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
        [last_To:]
        Call-ID: [call_id]
        CSeq: 10 BYE
        [routes]
        Contact: <sip:{from_number}@[local_ip]:[local_port];transport=[transport]>
        Max-Forwards: 70
        Content-Length: 0
    """
    body = ['<label id="talk"/>']
    body += _media_plan(dtmf, dtmf_delay, hold_seconds, audio, dtmf_pcap)
    body += [_nop(_log("hangup")), f'<send retrans="500">{_msg(bye)}</send>',
             '<recv response="200"/>', _nop(_log("ended", "caller"))]
    return body


def _media_plan(dtmf: str, dtmf_delay: float, hold_seconds: float, audio: Path,
                dtmf_pcap: Path | None = None) -> list[str]:
    """Audio from the answer on, DTMF after ``dtmf_delay``, audio again until the end.

    ``dtmf_pcap`` (see :func:`write_dtmf_pcap`) sends all digits in one RTP stream; without
    it sipp's per-digit pcaps are used, which only a single digit survives reliably."""
    loop = max(pcap_seconds(audio), 1.0)
    steps, elapsed = [], 0.0
    if dtmf:
        first = min(dtmf_delay, hold_seconds)
        steps += _audio_for(audio, first, loop)
        elapsed = first
    if dtmf and dtmf_pcap is not None:
        logs = "".join(_log("dtmf", digit) for digit in dtmf)
        length_ms = int(pcap_seconds(dtmf_pcap) * 1000) + 60
        steps += [_nop(f'<exec play_pcap_audio="{escape(str(dtmf_pcap))}"/>{logs}'),
                  f'<pause milliseconds="{length_ms}"/>']
        elapsed += length_ms / 1000
    elif dtmf:
        for digit in dtmf:
            pcap = PCAP_DIR / f"dtmf_2833_{DTMF_NAMES[digit]}.pcap"
            steps += [_nop(f'<exec play_pcap_audio="{escape(str(pcap))}"/>'
                           f'{_log("dtmf", digit)}'),
                      f'<pause milliseconds="{DTMF_GAP_MS}"/>']
            elapsed += DTMF_GAP_MS / 1000
    steps += _audio_for(audio, max(hold_seconds - elapsed, 0.0), loop)
    return steps


def write_dtmf_pcap(digits: str, path: Path, gap: float = DTMF_GAP_MS / 1000) -> Path:
    """All ``digits`` as RFC 4733 events in one RTP stream (continuous sequence numbers)."""
    import numpy as np
    from testkit.rtp_pcap import rtp_pcap
    silence = np.zeros(int((len(digits) * gap + 0.1) * 8000), dtype=np.int16)
    rtp_pcap(silence, path, dtmf=[(0.04 + i * gap, d) for i, d in enumerate(digits)])
    return path


def _audio_for(audio: Path, seconds: float, loop: float) -> list[str]:
    """Play ``audio`` again every ``loop`` seconds for ``seconds`` (pauses included)."""
    steps = []
    while seconds > 0.001:
        chunk = min(loop, seconds)
        steps += [_play(audio), f'<pause milliseconds="{int(chunk * 1000)}"/>']
        seconds -= chunk
    return steps


class Caller:
    """A caller dialling a number; ``await run()`` returns a :class:`CallResult`.

    From the trunk IP (default 127.0.0.2) it is the carrier; from 127.0.0.1 with
    ``auth_user``/``auth_password`` it is an agent phone (feature codes, fraud tests).
    Events for :meth:`wait_for`: ``invite``, ``ringing``, ``progress``, ``challenge``,
    ``final``, ``answered``, ``dtmf``, ``hangup``, ``ended``, ``rejected``, ``cancel``."""

    def __init__(self, did: str, server_host: str = "127.0.0.1", server_port: int = 5060,
                 local_ip: str = "127.0.0.2", local_port: int | None = None,
                 from_number: str = "15550001", dtmf: str = "1", dtmf_delay: float = 1.0,
                 hold_seconds: float = 10.0, answer_timeout: float = 30.0,
                 audio: Path = G711A_PCAP, timeout: float | None = None,
                 auth_user: str | None = None, auth_password: str | None = None,
                 dtmf_gap: float = DTMF_GAP_MS / 1000):
        """``dtmf_gap``: seconds between the keys of ``dtmf`` (one RTP stream)."""
        self.did, self.from_number = did, from_number
        self.server_host, self.server_port = server_host, server_port
        self.local_ip = local_ip
        self.local_port = local_port or free_port(local_ip)
        self.dtmf, self.dtmf_delay, self.hold_seconds = dtmf, dtmf_delay, hold_seconds
        self.answer_timeout, self.audio = answer_timeout, audio
        self.timeout = timeout or answer_timeout + hold_seconds + 20
        auth = (auth_user, auth_password or "") if auth_user else None
        if not all(c in DTMF_EVENTS for c in dtmf):
            raise ValueError(f"dtmf {dtmf!r}: keys 0-9, * and # only")
        self._dtmf_dir = tempfile.mkdtemp(prefix="callpilot-dtmf-") if dtmf else None
        try:
            dtmf_pcap = (write_dtmf_pcap(dtmf, Path(self._dtmf_dir) / "dtmf.pcap", dtmf_gap)
                         if dtmf else None)
        except BaseException:
            shutil.rmtree(self._dtmf_dir, ignore_errors=True)
            raise
        scenario = caller_scenario(did, from_number, dtmf, dtmf_delay, hold_seconds,
                                   answer_timeout, audio, auth, dtmf_pcap)
        self._sipp = SippProcess(
            f"caller-{did}", scenario,
            [f"{server_host}:{server_port}", "-i", local_ip, "-p", str(self.local_port),
             "-m", "1", "-mi", local_ip, "-mp", str(media_port(local_ip))], self.timeout)

    async def run(self) -> CallResult:
        """Place the call and wait for its end (sipp killed if this task is cancelled)."""
        started = time.monotonic()
        try:
            await self._sipp.start()
            await self._sipp.wait()
        finally:
            if self._sipp.proc is not None and self._sipp.proc.returncode is None:
                self._sipp.kill_now()
                with contextlib.suppress(Exception):
                    await asyncio.shield(self._sipp.proc.wait())
            if self._dtmf_dir:
                shutil.rmtree(self._dtmf_dir, ignore_errors=True)
        result = self._result()
        logger.info("call %s -> %s: status %s answered %s ended by %s in %.1f s (%.1f s wall)",
                    self.from_number, self.did, result.status, result.answered,
                    result.ended_by, result.duration, time.monotonic() - started)
        if result.returncode not in (0, None) or result.status is None:
            logger.warning("sipp caller exit %s; files in %s\n%s", result.returncode,
                           self._sipp.workdir, result.stderr_tail)
        else:
            self._sipp.cleanup()
        return result

    async def wait_for(self, event: str, timeout: float = 10.0) -> SipEvent:
        """Await an event while ``run()`` runs in another task (``answered``, ``dtmf``...)."""
        return await self._sipp.wait_event(event, timeout)

    @property
    def events(self) -> list[SipEvent]:
        return list(self._sipp.events)

    def _result(self) -> CallResult:
        ev = {e.name: e for e in self._sipp.events}
        final = ev.get("final")
        answered = "answered" in ev
        ended = ev.get("ended")
        duration = 0.0
        if answered and ended:
            duration = (ended.clock_ms - ev["answered"].clock_ms) / 1000
        return CallResult(
            status=int(final.detail) if final and final.detail.isdigit() else None,
            answered=answered, ended_by=ended.detail if ended else None, duration=duration,
            returncode=self._sipp.proc.returncode if self._sipp.proc else None,
            stderr_tail=self._sipp.stderr_tail(), events=list(self._sipp.events),
            stats=self._sipp.stats())


class PhonePool:
    """Registered agent phones of one test: ``await pool.start(ext, ...)``; ``await
    pool.close()`` unregisters and stops every phone started (the e2e fixtures' teardown)."""

    def __init__(self, config, passwords: dict[str, str], **defaults) -> None:
        self.config, self.passwords, self.defaults = config, passwords, defaults
        self.started: list[AgentPhone] = []

    async def start(self, ext: str, behaviour: str = "answer", **kwargs) -> AgentPhone:
        a = self.config.asterisk
        phone = AgentPhone(ext, self.passwords[ext], a.sip_host, a.sip_port, behaviour=behaviour,
                           **{**self.defaults, **kwargs})
        await phone.start()
        self.started.append(phone)
        return phone

    async def close(self) -> None:
        for phone in self.started:
            await phone.unregister()
            await phone.stop()
