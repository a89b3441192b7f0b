"""(b) Live: CallPilot's ACD against plain app_queue, same Asterisk, same agents, same load.

One isolated Asterisk (own state dir, free loopback ports) is started by the bench with:

* ``queue_bench_did`` (8500): ``Answer() + Queue(bench)`` - app_queue, members PJSIP/<ext>;
* ``acd_bench_did``  (8501): ``Answer() + Stasis(callpilot,enqueue,bench)`` - CallPilot's
  ACD without IVR, with ``callpilot serve`` running (its queue ``bench`` has the same agents);
* ``bare_bench_did`` (8502): ``Answer() + Stasis(callpilot-bare)`` - ``bare_ari.py``, an ARI
  app on serve's own ARI client that rings the next agent on every StasisStart with serve's
  request and no ACD at all: what serve's transport costs without any decision (D41);
* ``raw_bench_did`` (8503): the same app on a bare ``asyncio.Protocol`` (``--raw``): no
  aiohttp, no client, the originate written inside ``data_received``: the floor of Python.

N agent phones (sipp, auto-answer after ``answer_delay``) register once and serve both
paths.  The calls of each path are split into ``rounds`` that alternate (app_queue,
CallPilot, bare ARI, raw ARI, app_queue, ...), so load from anything else on the machine hits both paths alike;
the two paths never run at the same time, so they do not compete for the agents.  A round
is ONE sipp caller process placing its calls at ``rate`` calls/s from the trunk address;
every call sends G.711 RTP from a pcap as soon as it is answered (so ``Answer()`` returns on
the first frame instead of its 500 ms timer) and hangs up after ``hold`` seconds.  The first
``warmup`` calls of each path are not measured.  The caller number is ``4<path><round><sipp
call number>``, unique per call, and Asterisk puts it in the From of the agent INVITE on
both paths: that is how a caller leg is matched to its agent leg.

Latency = kernel timestamp of the agent INVITE leaving Asterisk - kernel timestamp of the
caller INVITE reaching it (dumpcap on ``lo``, see sipcap.py).  A call fails unless the
caller got 200, an agent INVITE went out, the agent answered and the caller hung up itself.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from testkit import sipua
from callpilot.infra.asterisk import runner
from callpilot.infra.config import AcdConfig, Config
from testkit.isolated import isolated_config, seed_queue_agents
from bench.acd import sipcap

logger = logging.getLogger(__name__)

QUEUE = "bench"
APPQ_DID = "8500"
ACD_DID = "8501"
BARE_DID = "8502"
RAW_DID = "8503"
TRUNK_IP = "127.0.0.2"
EXT_BASE = 2001
RTP_BLOCK = 400


@dataclass
class LiveOptions:
    agents: int = 10
    calls: int = 40
    warmup: int = 2
    rate: float = 2.0
    hold: float = 1.5
    answer_delay: float = 0.2
    answer_timeout: float = 15.0
    rounds: int = 4
    keep: bool = False
    ari_rest: str = "auto"    # serve's asterisk.ari_rest_transport


@dataclass
class Round:
    path: str                 # "app_queue" | "callpilot"
    did: str
    prefix: str               # 4<path><round>: caller numbers are prefix + sipp call number
    calls: int
    skip: int                 # warm-up calls (the first ones) not measured
    events: dict[int, dict[str, str]] = field(default_factory=dict)   # call number -> events
    sipp_rc: int | None = None
    wall: float = 0.0

    def measured(self) -> list[tuple[str, dict[str, str]]]:
        return [(f"{self.prefix}{n}", self.events.get(n, {}))
                for n in range(self.skip + 1, self.calls + 1)]


# --- instance -----------------------------------------------------------------------------


def bench_config(state_dir: Path, rtp_block: int = RTP_BLOCK) -> Config:
    """An isolated instance: own state dir, free loopback ports, only the two bench DIDs."""
    config = isolated_config(state_dir, rtp_block=rtp_block)
    a = config.asterisk
    a.sip_host, a.trunk_ips, a.agent_qualify_seconds = "127.0.0.1", [TRUNK_IP], 0
    a.dids, a.agi_dids = {}, {}                      # no IVR: nothing to prerender
    a.queue_bench_did, a.acd_bench_did = APPQ_DID, ACD_DID
    a.bare_bench_did, a.raw_bench_did = BARE_DID, RAW_DID
    # app_queue's bench queue has wrapuptime 0 and a 15 s ring timeout: the same here
    config.acd = AcdConfig(ring_timeout=15, wrapup_seconds=0, general_queue=QUEUE)
    return config


def seed_agents(config: Config, n: int) -> dict[str, str]:
    """Queue ``bench`` (no announcements, like app_queue's) and ``n`` auto-login agents
    2001.. in it; ``{ext: password}``."""
    return seed_queue_agents(config, QUEUE, n, ext_base=EXT_BASE, title="Benchmark queue",
                             announce_frequency=0)


# --- the run ------------------------------------------------------------------------------


class LiveBench:
    rtp_block = RTP_BLOCK         # RTP ports of the instance (a load run needs more)
    capture_caller_rtp = True     # the callers' RTP into Asterisk (the first-RTP split)
    paths = (("app_queue", APPQ_DID), ("callpilot", ACD_DID), ("bare", BARE_DID), ("raw", RAW_DID))

    def __init__(self, opts: LiveOptions, log: Callable[[str], None]):
        self.opts = opts
        self.log = log
        self.state_dir = Path(tempfile.mkdtemp(prefix="callpilot-bench-acd-"))
        try:
            self.config = bench_config(self.state_dir / "state", self.rtp_block)
            self.config.asterisk.ari_rest_transport = opts.ari_rest
        except BaseException:
            shutil.rmtree(self.state_dir, ignore_errors=True)
            raise
        self.serve = None
        self.bare: list[asyncio.subprocess.Process] = []     # the bare ARI apps (D41)
        self.phones: list[sipua.AgentPhone] = []
        self.callers: list[sipua.SippProcess] = []
        self.capture: sipcap.Capture | None = None
        self.failed_run = False
        self.asterisk_version = ""

    async def run(self) -> dict:
        try:
            return await self._run()
        except BaseException:
            self.failed_run = True
            raise
        finally:
            await self._cleanup()

    async def _run(self) -> dict:
        o, a = self.opts, self.config.asterisk
        passwords = seed_agents(self.config, o.agents)
        self.log(f"live: state dir {self.state_dir}; SIP {a.sip_port}, ARI {a.ari_port}, "
                 f"{o.agents} agents {min(passwords)}..{max(passwords)}")
        await asyncio.to_thread(runner.up, self.config)
        version = (await asyncio.to_thread(runner.rx, self.config, "core show version")).strip()
        self.asterisk_version = " ".join(version.split()[:2])
        self.log(f"live: {self.asterisk_version} up")
        from tests.e2e.serve_proc import ServeProcess
        self.serve = ServeProcess(self.config).start()
        await self.serve.wait_ready(timeout=40)
        await self.serve.wait_speech_loaded(timeout=120)  # its CPU after ready (D40), not in a round
        self.log("live: callpilot serve ready")
        for path, _ in self.paths:
            if path in ("bare", "raw"):
                self.bare.append(await self._start_bare(path, sorted(passwords)))
        await self._start_phones(passwords)
        await self._agents_idle(timeout=20)
        self.log(f"live: {o.agents} agent phones registered and idle")
        bpf = f"udp port {a.sip_port} or tcp port {a.ari_port}"
        if self.capture_caller_rtp:
            bpf += " or " + sipcap.rtp_bpf(TRUNK_IP, a.rtp_start, a.rtp_end)
        self.capture = sipcap.Capture(self.state_dir / "sip.pcap", bpf).start()
        rounds = self._plan()
        for r in rounds:
            await self._agents_idle(timeout=20)
            await self._run_round(r)
        await asyncio.sleep(0.5)                 # last BYEs into the capture
        self.capture.stop()
        return self._analyse(rounds)

    def _plan(self) -> list[Round]:
        o = self.opts
        n = max(1, min(o.rounds, 9, o.calls))
        sizes = [o.calls // n + (i < o.calls % n) for i in range(n)]
        rounds = []
        for i, size in enumerate(sizes):
            skip = o.warmup if i == 0 else 0
            for digit, (path, did) in enumerate(self.paths, 1):
                rounds.append(Round(path, did, f"4{digit}{i + 1}", size + skip, skip))
        return rounds

    async def _start_bare(self, variant: str, agents: list[str]) -> asyncio.subprocess.Process:
        """bare_ari.py in its own process, like serve (its own loop, its own core to get)."""
        s, a = self.config.secrets, self.config.asterisk
        env = {**os.environ, "BARE_ARI_USER": s.ari_user, "BARE_ARI_PASSWORD": s.ari_password}
        log = self.state_dir / f"{variant}_ari.log"
        with open(log, "wb") as stderr:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench.acd.bare_ari", "--url", self.config.ari_client_url,
                "--app", f"{a.app_name}-{variant}", "--agents", ",".join(agents),
                *(["--raw"] if variant == "raw" else []),
                stdout=asyncio.subprocess.PIPE, stderr=stderr, env=env)
        line = await asyncio.wait_for(process.stdout.readline(), 30)
        if b"ready" not in line:
            raise RuntimeError(f"{variant} ARI app did not start (see {log})")
        self.log(f"live: {variant} ARI app ready")
        return process

    async def _start_phones(self, passwords: dict[str, str]) -> None:
        a, o = self.config.asterisk, self.opts
        for ext, password in sorted(passwords.items()):
            self.phones.append(sipua.AgentPhone(
                ext, password, a.sip_host, a.sip_port, behaviour="answer",
                answer_delay=o.answer_delay, calls=100_000, timeout=900))
        await asyncio.gather(*(phone.start() for phone in self.phones))

    async def _agents_idle(self, timeout: float) -> None:
        """Every agent idle for serve (AMI device NOT_INUSE, ACD available) and app_queue."""
        exts = {p.ext for p in self.phones}

        def ready(status: dict) -> bool:
            agents = status.get("agents", {})
            return all(agents.get(e, {}).get("device") == "NOT_INUSE"
                       and agents.get(e, {}).get("state") == "available" for e in exts)
        await self.serve.wait_for(ready, timeout=timeout, what="all bench agents idle")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = await asyncio.to_thread(runner.rx, self.config, f"queue show {QUEUE}")
            if len(re.findall(r"\(Not in use\)", out)) >= len(exts):
                return
            await asyncio.sleep(0.2)
        raise RuntimeError(f"app_queue members not all idle:\n{out}")

    async def _run_round(self, r: Round) -> None:
        o, a = self.opts, self.config.asterisk
        scenario = sipua.caller_scenario(r.did, f"{r.prefix}[call_number]", "", 1.0, o.hold,
                                         o.answer_timeout, sipua.G711A_PCAP)
        timeout = r.calls / o.rate + o.answer_timeout + o.hold + 30
        sipp = sipua.SippProcess(
            f"bench-{r.path}", scenario,
            [f"{a.sip_host}:{a.sip_port}", "-i", TRUNK_IP, "-p", str(sipua.free_port(TRUNK_IP)),
             "-r", f"{o.rate:g}", "-rp", "1000", "-m", str(r.calls), "-l", str(r.calls),
             "-mi", TRUNK_IP, "-mp", str(sipua.media_port(TRUNK_IP))], timeout)
        self.callers.append(sipp)
        started = time.monotonic()
        await sipp.start()
        r.sipp_rc = await sipp.wait(timeout + 10)
        r.wall = time.monotonic() - started
        for event in sipp.events:
            r.events.setdefault(event.call, {})[event.name] = event.detail
        self.log(f"live: {r.path:<9} round {r.prefix[-1]}: {r.calls} calls"
                 f"{f' ({r.skip} warm-up)' if r.skip else ''} to {r.did} in {r.wall:.1f} s, "
                 f"sipp exit {r.sipp_rc}")

    # --- analysis -----------------------------------------------------------------------

    def _analyse(self, rounds: list[Round]) -> dict:
        a = self.config.asterisk
        packets = sipcap.read_pcap(self.capture.path)
        messages = sipcap.sip_messages(packets, a.sip_port)
        calls = sipcap.correlate(messages, a.sip_port, TRUNK_IP, "4")
        sipcap.note_caller_rtp(packets, calls, TRUNK_IP)
        result: dict = {"figures": {}, "details": {}}
        figures = result["figures"]
        for path, _ in self.paths:
            mine = [r for r in rounds if r.path == path]
            stats = _path_stats(mine, calls)
            result["details"][path] = stats
            for key in ("p50_ms", "p95_ms", "failed", "answer_p50_ms", "after_answer_p50_ms",
                        "answer_to_rtp_p50_ms", "rtp_to_agent_p50_ms"):
                figures[f"live.{path}.{key}"] = stats[key]
        for q in ("p50", "p95"):
            base = figures.get(f"live.app_queue.{q}_ms")
            for path, label in (("callpilot", ""), ("bare", "bare_"), ("raw", "raw_")):
                mine = figures.get(f"live.{path}.{q}_ms")
                figures[f"live.ratio.{label}{q}"] = mine / base if base and mine is not None else None
        bare, mine = figures.get("live.bare.p50_ms"), figures.get("live.callpilot.p50_ms")
        figures["live.ratio.callpilot_over_bare_p50"] = mine / bare if bare and mine is not None else None
        for path in ("callpilot", "bare", "raw"):
            wanted = {number for r in rounds if r.path == path for number, _ in r.measured()}
            if not wanted:
                continue
            breakdown = self._callpilot_breakdown(packets, calls, wanted)
            result["details"][f"{path}_breakdown"] = breakdown
            for key, value in breakdown.items():
                figures[f"live.{path}.{key}"] = value
        figures["live.ratio.floor_p50"] = _floor_ratio(figures)
        figures["live.ratio.asterisk_after_rtp_p50"] = _asterisk_after_rtp_ratio(figures)
        result["details"]["serve_log"] = self._serve_log_summary()
        result["details"]["asterisk_version"] = self.asterisk_version
        return result

    def _callpilot_breakdown(self, packets, calls: dict[str, sipcap.CallTimes], wanted: set[str]) -> dict:
        """Where CallPilot's time goes, from the ARI socket (best effort)."""
        try:
            ari = sipcap.ari_times(packets, self.config.asterisk.ari_port)
        except Exception:            # diagnostic only: never fail the run on it
            logger.exception("ARI breakdown failed")
            return {}
        # (name, from point, to point); points: 0 caller INVITE, 1 StasisStart, 2 POST
        # addChannel (hold bridge), 3 its reply, 4 POST originate, 5 agent INVITE, 6 the
        # caller's first RTP packet (Answer() returns on it, then Stasis() starts), 7 the
        # originate's reply (sent once the agent channel exists and its dial thread started)
        spans = (("invite_to_stasis", 0, 1), ("rtp_to_stasis", 6, 1), ("stasis_to_originate", 1, 4),
                 ("stasis_to_park", 1, 2), ("park_ari", 2, 3), ("park_to_originate", 3, 4),
                 ("originate_to_agent_invite", 4, 5), ("originate_ari", 4, 7),
                 ("originate_reply_to_agent_invite", 7, 5))
        segments: dict[str, list[float]] = {name: [] for name, _, _ in spans}
        for call in ari.values():
            times = calls.get(call.number)
            if call.number not in wanted or times is None or times.agent_invite is None:
                continue
            points = [times.invite, call.stasis_start, call.park_request, call.park_response,
                      call.originate_request, times.agent_invite, times.caller_rtp,
                      call.originate_response]
            for name, start, end in spans:
                if points[start] is not None and points[end] is not None:
                    segments[name].append((points[end] - points[start]) * 1000)
        out = {}
        for key, values in segments.items():
            if values:
                out[f"{key}_p50_ms"] = statistics.median(values)
        return out

    def _serve_log_summary(self) -> dict:
        path = self.config.state_dir / "serve.log"
        try:
            lines = path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return {}
        problems = [line for line in lines if " WARNING " in line or " ERROR " in line]
        return {"lines": len(lines), "warnings_errors": len(problems), "first_problems": problems[:5]}

    # --- cleanup ------------------------------------------------------------------------

    async def _cleanup(self) -> None:
        for sipp in self.callers:
            with contextlib.suppress(Exception):
                await sipp.kill()
        for phone in self.phones:
            with contextlib.suppress(Exception):
                await phone.stop()
        if self.capture is not None:
            with contextlib.suppress(Exception):
                self.capture.stop()
        for process in self.bare:
            with contextlib.suppress(Exception):
                process.terminate()
                await asyncio.wait_for(process.wait(), 10)
        if self.serve is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.serve.stop)
        try:
            await asyncio.to_thread(runner.down, self.config)
        except Exception:
            logger.exception("asterisk down failed for %s", self.config.asterisk_dir)
        keep = self.opts.keep or self.failed_run
        for sipp in self.callers + [p._sipp for p in self.phones if p._sipp is not None]:
            if keep:                 # everything of the run in one place
                with contextlib.suppress(OSError):
                    (self.state_dir / "sipp").mkdir(exist_ok=True)
                    shutil.move(str(sipp.workdir), self.state_dir / "sipp" / sipp.workdir.name)
            else:
                sipp.cleanup()
        if keep:
            self.log(f"live: files kept in {self.state_dir}")
        else:
            shutil.rmtree(self.state_dir, ignore_errors=True)


def _path_stats(rounds: list[Round], calls: dict[str, sipcap.CallTimes]) -> dict:
    latencies, answers, after, failures, to_rtp, from_rtp = [], [], [], [], [], []
    retried = measured = 0
    for r in rounds:
        for number, events in r.measured():
            measured += 1
            times = calls.get(number)
            why = _failure(times, events)
            if why:
                failures.append(f"{number}: {why}")
                continue
            retried += times.agent_invites > 1
            latencies.append(times.latency * 1000)
            answers.append((times.answer - times.invite) * 1000)
            after.append((times.agent_invite - times.answer) * 1000)
            if times.caller_rtp is not None:
                to_rtp.append((times.caller_rtp - times.answer) * 1000)
                from_rtp.append((times.agent_invite - times.caller_rtp) * 1000)
    stats = {"calls": measured, "failed": len(failures), "failures": failures[:10],
             "agent_retries": retried, "sipp_exit": sorted({r.sipp_rc for r in rounds}, key=str),
             "round_p50_ms": [_round_p50(r, calls) for r in rounds]}
    stats.update(_dist("", latencies))
    stats.update(_dist("answer_", answers, ("p50",)))
    stats.update(_dist("after_answer_", after, ("p50",)))
    stats.update(_dist("answer_to_rtp_", to_rtp, ("p50",)))
    stats.update(_dist("rtp_to_agent_", from_rtp, ("p50",)))
    return stats


def _round_p50(r: Round, calls: dict[str, sipcap.CallTimes]) -> float | None:
    values = [calls[n].latency * 1000 for n, _ in r.measured()
              if n in calls and calls[n].latency is not None]
    return round(statistics.median(values), 2) if values else None


def setup_problem(times: sipcap.CallTimes | None, events: dict[str, str]) -> str:
    """What went wrong before an agent phone was rung ('' if nothing)."""
    if times is None or times.invite is None:
        return "no INVITE seen"
    if times.answer is None:
        return f"caller not answered (final {events.get('final', 'none')})"
    if times.agent_invite is None:
        return "no agent INVITE"
    return ""


def _failure(times: sipcap.CallTimes | None, events: dict[str, str]) -> str:
    if why := setup_problem(times, events):
        return why
    if times.agent_answer is None:
        return "agent never answered"
    if events.get("ended") != "caller":
        return f"call ended by {events.get('ended', 'nobody')} (final {events.get('final')})"
    return ""


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    pos = q * (len(ordered) - 1)
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def _dist(prefix: str, values: list[float], which: tuple[str, ...] = ("p50", "p95", "max", "mean")) -> dict:
    if not values:
        return {f"{prefix}{w}_ms": None for w in which}
    funcs = {"p50": lambda v: _pct(v, 0.5), "p95": lambda v: _pct(v, 0.95), "max": max,
             "mean": statistics.fmean}
    return {f"{prefix}{w}_ms": funcs[w](values) for w in which}


async def run(opts: LiveOptions, log: Callable[[str], None] = print) -> dict:
    return await LiveBench(opts, log).run()


def _floor_ratio(figures: dict) -> float | None:
    """The p50 ratio a serve taking no time at all would reach: Asterisk's own INVITE ->
    StasisStart plus originate -> agent INVITE, over app_queue's whole path (D20)."""
    return _parts_over(figures, ("live.callpilot.invite_to_stasis_p50_ms",
                                 "live.callpilot.originate_to_agent_invite_p50_ms"),
                       "live.app_queue.p50_ms")


def _asterisk_after_rtp_ratio(figures: dict) -> float | None:
    """Asterisk's own work after ``Answer()`` returned (the caller's first RTP packet), the
    only part where the two paths differ inside Asterisk: CallPilot's Stasis() up to the
    StasisStart frame plus originate -> agent INVITE, over app_queue's Queue() up to the agent
    INVITE."""
    return _parts_over(figures, ("live.callpilot.rtp_to_stasis_p50_ms",
                                 "live.callpilot.originate_to_agent_invite_p50_ms"),
                       "live.app_queue.rtp_to_agent_p50_ms")


def _parts_over(figures: dict, parts: tuple[str, ...], base_key: str) -> float | None:
    values = [figures.get(key) for key in parts]
    base = figures.get(base_key)
    if not base or any(not isinstance(v, (int, float)) for v in values):
        return None
    return sum(values) / base
