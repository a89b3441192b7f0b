"""``python -m bench.ivr``: IVR calls through real Asterisk + ``callpilot serve`` + sipp callers.

Default: ``--calls`` calls, ``--concurrency`` at a time, dial DID 800 -> the Korean speech demo
flow ``main_ko`` (speech model configured, so every question opens and removes a listening tap:
snoop + externalMedia + bridge).  Each caller sends A-law RTP with RFC 4733 keys in the same
stream: "2" during the yes/no question (-> menu), "1" during the menu prompt (-> billing), then
hangs up while queued.  Figures: serve's CPU per call (process CPU during the run minus its idle
rate, / calls), Asterisk's CPU per call, failed calls (not answered, not ended by the caller,
or a call record whose menu path / queue is not ``wants_agent=2, menu=1`` / ``billing``).

``--media``: the audio transport measurement behind docs/decisions.md ("Speech over ARI"):
externalMedia RTP (UDP, slin16) against chan_websocket (slin16) on the same snoop of the same
calls: set-up time, first frame, onset arrival difference, and the CPU per stream of this
process receiving the frames (+ Asterisk's).  The bench is the ARI application there (no serve).

    .venv/bin/python -m bench.ivr                    # about 60 s
    .venv/bin/python -m bench.ivr --media            # about 50 s
    .venv/bin/python -m bench.ivr --save-baseline    # writes bench/baselines/ivr.json
"""
from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:           # also runs as ``python bench/ivr.py``
    sys.path.insert(0, str(REPO))

from bench.acd.report import Row, load_baseline, make_run, save_baseline, table  # noqa: E402
from callpilot.infra import config as config_mod  # noqa: E402
from callpilot.app import demo  # noqa: E402
from testkit import sipua  # noqa: E402
from callpilot.infra.asterisk import runner  # noqa: E402
from callpilot.infra.config import Config, to_toml  # noqa: E402
from ivr.speech import default_model_path  # noqa: E402
from testkit.ivr_fakes import rtp_pcap, speech_samples  # noqa: E402
from ivr.tts import PromptCache, read_wav  # noqa: E402

DEFAULT_BASELINE = REPO / "bench" / "baselines" / "ivr.json"
TRUNK_IP = "127.0.0.2"
GREET = "콜파일럿 은행입니다."
EXPECTED_PATH = ["wants_agent=2", "menu=1"]
CLOCK_TICK = os.sysconf("SC_CLK_TCK")

ROWS = (
    Row("calls.serve_cpu_ms_per_call", "serve CPU per call", "ms"),
    Row("calls.asterisk_cpu_ms_per_call", "Asterisk CPU per call", "ms"),
    Row("calls.failed", "failed calls", ""),
    Row("calls.calls", "calls placed", "", False),
    Row("calls.flow_p50_ms", "answer -> queued (flow time incl. prompts) p50", "ms"),
    Row("media.rtp.setup_ms", "media: RTP tap set-up (snoop+externalMedia+bridge)", "ms"),
    Row("media.websocket.setup_ms", "media: websocket tap set-up", "ms"),
    Row("media.onset_ws_minus_rtp_ms", "media: speech onset arrival, websocket - RTP (mean)", "ms"),
    Row("media.rtp.cpu_pct_per_stream", "media: RTP receive, this process, % core per stream", ""),
    Row("media.websocket.cpu_pct_per_stream", "media: websocket receive, % core per stream", ""),
    Row("media.rtp.asterisk_pct_per_stream", "media: RTP, Asterisk % core per stream", ""),
    Row("media.websocket.asterisk_pct_per_stream", "media: websocket, Asterisk % core per stream", ""),
)


# ------------------------------------------------------------------ instance

def make_config(state_dir: Path, dids: dict[str, str], agi_dids: dict[str, str]) -> Config:
    def port(kinds=(socket.SOCK_STREAM,)) -> int:
        return sipua.free_port("127.0.0.1", kinds)     # never the same port twice in a process
    rtp_start = 11000 + (os.getpid() % 20) * 200
    env = {"CALLPILOT_STATE_DIR": str(state_dir),
           "CALLPILOT_SIP_PORT": str(port((socket.SOCK_STREAM, socket.SOCK_DGRAM))),
           "CALLPILOT_ARI_PORT": str(port()), "CALLPILOT_AMI_PORT": str(port()),
           "CALLPILOT_AGI_PORT": str(port()), "CALLPILOT_WEB_PORT": str(port()),
           "CALLPILOT_RTP_START": str(rtp_start), "CALLPILOT_RTP_END": str(rtp_start + 199),
           "CALLPILOT_SPEECH_MODEL": str(default_model_path())}
    for name in ("CALLPILOT_ASTERISK_ROOTFS", "CALLPILOT_ASTERISK_BINARY"):
        if name in os.environ:
            env[name] = os.environ[name]
    config = config_mod.load(env=env)
    config.asterisk.dids, config.asterisk.agi_dids = dids, agi_dids
    config.asterisk.agent_qualify_seconds = 0
    config.tts_voice = "ko"
    return config


def cpu_seconds(pid: int | None) -> float:
    """user + system CPU of a process, all its threads (/proc/<pid>/stat)."""
    if pid is None:
        return 0.0
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except FileNotFoundError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICK     # utime + stime


# ------------------------------------------------------------------ calls through serve

@dataclass
class CallOutcome:
    number: str
    answered: bool
    ended_by: str | None
    ok: bool
    detail: str
    flow_ms: float | None


async def calls_bench(calls: int, concurrency: int, keep: bool,
                      profile: Path | None = None, ari_rest: str = "auto") -> tuple[dict, dict]:
    from tests.e2e.serve_proc import ServeProcess, records_for
    work = Path(tempfile.mkdtemp(prefix="callpilot-bench-ivr-"))
    config = make_config(work / "state", {"800": "main_ko"}, {})
    config.asterisk.ari_rest_transport = ari_rest
    demo.seed(config)
    (config.state_dir / "config.toml").write_text(to_toml(config))
    greet = read_wav(PromptCache(work / "p", "ko", config.tts_rate).render(GREET, "ko")).seconds
    pcap = work / "keys.pcap"
    rtp_pcap(speech_samples([("silence", greet + 6)]), pcap,
             dtmf=[(greet + 1.0, "2"), (greet + 2.5, "1")])
    runner.up(config)
    serve = ServeProcess(config).start()
    try:
        await serve.wait_ready(timeout=90)
        await serve.wait_speech_loaded(timeout=120)  # loads after ready (D40): not in the idle CPU
        await asyncio.sleep(3)                      # let start-up (prerender, seeding) settle
        spid, apid = serve.proc.pid, runner.asterisk_pid(config)
        idle_s, idle_a, t_idle = cpu_seconds(spid), cpu_seconds(apid), time.monotonic()
        await asyncio.sleep(3)
        idle_rate_s = (cpu_seconds(spid) - idle_s) / (time.monotonic() - t_idle)
        idle_rate_a = (cpu_seconds(apid) - idle_a) / (time.monotonic() - t_idle)
        spy = _py_spy(spid, profile) if profile else None
        start_s, start_a, started = cpu_seconds(spid), cpu_seconds(apid), time.monotonic()
        outcomes = await _place_calls(config, pcap, greet + 4.5, calls, concurrency)
        outcomes = await _check_records(config, outcomes, records_for)
        wall = time.monotonic() - started
        serve_cpu = cpu_seconds(spid) - start_s - idle_rate_s * wall
        ast_cpu = cpu_seconds(apid) - start_a - idle_rate_a * wall
        rest = (await serve.status()).get("ari_rest", {})   # which transport carried serve's REST
        if spy is not None:
            spy.send_signal(signal.SIGINT)      # py-spy writes its samples on SIGINT
            spy.wait(30)
    finally:
        serve.stop()
        runner.down(config)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    failed = [o for o in outcomes if not o.ok]
    flow = [o.flow_ms for o in outcomes if o.flow_ms is not None]
    figures = {"calls.calls": len(outcomes), "calls.failed": len(failed),
               "calls.serve_cpu_ms_per_call": round(serve_cpu * 1000 / len(outcomes), 1),
               "calls.asterisk_cpu_ms_per_call": round(ast_cpu * 1000 / len(outcomes), 1),
               "calls.flow_p50_ms": round(float(np.percentile(flow, 50)), 0) if flow else None}
    details = {"failures": [f"{o.number}: {o.detail}" for o in failed][:20],
               "wall_s": round(wall, 1), "serve_idle_pct": round(idle_rate_s * 100, 2),
               "asterisk_idle_pct": round(idle_rate_a * 100, 2), "ari_rest": rest}
    return figures, details


def _py_spy(pid: int, out: Path) -> subprocess.Popen:
    """Sample serve (all threads, no pausing) over the measured window: ``--profile``."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return subprocess.Popen([exe, "record", "-p", str(pid), "-r", "200", "-t", "-f", "raw",
                             "--nonblocking", "-o", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def _place_calls(config: Config, pcap: Path, hold: float, calls: int,
                       concurrency: int) -> list[CallOutcome]:
    a = config.asterisk
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> CallOutcome:
        number = f"1888{os.getpid() % 1000:03d}{i:04d}"
        async with gate:
            caller = sipua.Caller("800", a.sip_host, a.sip_port, local_ip=TRUNK_IP,
                                  from_number=number, dtmf="", hold_seconds=hold, audio=pcap)
            result = await caller.run()
        ok = result.answered and result.ended_by == "caller"
        return CallOutcome(number, result.answered, result.ended_by, ok,
                           f"sip {result.status} ended by {result.ended_by}", None)

    return list(await asyncio.gather(*(one(i) for i in range(calls))))


async def _check_records(config: Config, outcomes: list[CallOutcome], records_for) -> list[CallOutcome]:
    deadline = time.monotonic() + 15
    for o in outcomes:
        rows = []
        while time.monotonic() < deadline:
            rows = records_for(config, o.number)
            if rows and rows[-1].state == "ended":
                break
            await asyncio.sleep(0.2)
        record = rows[-1] if rows else None
        if record is None:
            o.ok, o.detail = False, f"{o.detail}; no call record"
            continue
        if record.menu_path != EXPECTED_PATH or record.queue != "billing":
            o.ok = False
            o.detail = f"{o.detail}; menu_path {record.menu_path} queue {record.queue}"
        if record.enqueued_at and record.started_at:
            o.flow_ms = (record.enqueued_at - record.started_at).total_seconds() * 1000
    return outcomes


# ------------------------------------------------------------------ media transports

async def media_bench(streams: int, keep: bool) -> tuple[dict, dict]:
    import aiohttp
    from callpilot.infra.asterisk.ari import AriClient
    from ivr.speech.rtp import RtpReceiver
    from ivr.speech.vad import frame_db
    work = Path(tempfile.mkdtemp(prefix="callpilot-bench-media-"))
    config = make_config(work / "state", {"810": "media"}, {})
    pcap = work / "word.pcap"
    rtp_pcap(speech_samples([("silence", 3.0), ("say", "네"), ("silence", 8.0)]), pcap)
    runner.up(config)
    s, a = config.secrets, config.asterisk
    ari = AriClient(config.ari_url, s.ari_user, s.ari_password, "callpilot")
    media = AriClient(config.ari_url, s.ari_user, s.ari_password, "callpilot-media")
    token = base64.b64encode(f"{s.ari_user}:{s.ari_password}".encode()).decode()
    auth = {"Authorization": f"Basic {token}"}
    started: dict[str, asyncio.Event] = {}
    answered: asyncio.Queue[str] = asyncio.Queue()

    async def on_media(event: dict) -> None:
        if event["type"] == "StasisStart":
            started.setdefault(event["channel"]["id"], asyncio.Event()).set()

    async def on_call(event: dict) -> None:
        if event["type"] == "StasisStart" and (event.get("args") or [""])[0] == "inbound":
            await ari.post(f"/channels/{event['channel']['id']}/answer")
            await answered.put(event["channel"]["id"])

    media.on_event(on_media)
    ari.on_event(on_call)
    tasks = [asyncio.create_task(ari.run()), asyncio.create_task(media.run())]
    http = aiohttp.ClientSession(headers=auth)
    try:
        await ari.connected.wait()
        await media.connected.wait()
        tap = _TapFactory(config, media, http, started, RtpReceiver, frame_db)
        figures, details = await _media_runs(config, tap, answered, pcap, streams)
    finally:
        await http.close()
        await media.close()
        await ari.close()
        for t in tasks:
            t.cancel()
        runner.down(config)
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return figures, details


class _TapFactory:
    """Builds a snoop(spy=in) + externalMedia + bridge tap with either transport."""

    def __init__(self, config, media, http, started, receiver_cls, frame_db):
        self.config, self.media, self.http, self.started = config, media, http, started
        self.receiver_cls, self.frame_db = receiver_cls, frame_db

    async def open(self, call: str, kind: str) -> dict:
        snoop, ext, bridge = (f"cp-snoop-{call}-{kind}", f"cp-media-{call}-{kind}",
                              f"cp-listen-{call}-{kind}")
        t0 = time.perf_counter()
        common = {"channelId": ext, "app": "callpilot-media", "format": "slin16"}
        if kind == "rtp":
            receiver = await self.receiver_cls.open()
            host, port = receiver.address
            extra = {"external_host": f"{host}:{port}", "encapsulation": "rtp", "transport": "udp"}
        else:
            extra = {"external_host": "INCOMING", "encapsulation": "none", "transport": "websocket",
                     "connection_type": "server"}
        replies = await asyncio.gather(
            self.media.post(f"/channels/{call}/snoop", spy="in", app="callpilot-media", snoopId=snoop),
            self.media.post("/channels/externalMedia", **common, **extra),
            self.media.post(f"/bridges/{bridge}", type="mixing"))
        if kind == "websocket":
            connection = replies[1]["channelvars"]["MEDIA_WEBSOCKET_CONNECTION_ID"]
            base = self.config.ari_url.replace("http", "ws", 1)
            ws = await self.http.ws_connect(f"{base}/media/{connection}")
        await asyncio.gather(*(self.started.setdefault(c, asyncio.Event()).wait() for c in (snoop, ext)))
        await self.media.post(f"/bridges/{bridge}/addChannel", channel=f"{snoop},{ext}")
        state = {"setup_ms": (time.perf_counter() - t0) * 1000, "opened": time.monotonic(),
                 "first": None, "onset": None, "frames": 0}

        async def frames():
            if kind == "rtp":
                while (frame := await receiver.next_frame(5)) is not None:
                    yield frame
            else:
                async for msg in ws:
                    if msg.type.name == "BINARY":
                        yield msg.data
                    elif msg.type.name != "TEXT":
                        return

        async def consume():
            async for frame in frames():
                now = time.monotonic()
                state["frames"] += 1
                state["first"] = state["first"] or now
                level = self.frame_db(np.frombuffer(frame, dtype="<i2"))
                if state["onset"] is None and level > -45:
                    state["onset"] = now

        consumer = asyncio.create_task(consume())

        async def close():
            from callpilot.infra.asterisk.ari_helpers import safe_bridge_destroy, safe_hangup
            await asyncio.gather(safe_hangup(self.media, ext), safe_hangup(self.media, snoop),
                                 safe_bridge_destroy(self.media, bridge))
            consumer.cancel()
            if kind == "rtp":
                receiver.close()
            else:
                await ws.close()
        state["close"] = close
        return state


async def _media_runs(config, tap: _TapFactory, answered, pcap: Path, streams: int) -> tuple[dict, dict]:
    a = config.asterisk

    def call(number: str, hold: float):
        return asyncio.create_task(sipua.Caller("810", a.sip_host, a.sip_port, local_ip=TRUNK_IP,
                                                from_number=number, dtmf="", hold_seconds=hold,
                                                audio=pcap).run())
    setups = {"rtp": [], "websocket": []}
    onsets = []
    # Both transports tap the same call at once.  Each snoop channel runs its own 20 ms
    # timer, so the one opened second is out of phase by the set-up time: the order
    # alternates and the figure is the mean over both orders.
    for trial in range(4):
        running = call(f"1999{trial}", 6)
        channel = await answered.get()
        first, second = ("rtp", "websocket") if trial % 2 == 0 else ("websocket", "rtp")
        opened = {first: await tap.open(channel, first)}
        opened[second] = await tap.open(channel, second)
        rtp, ws = opened["rtp"], opened["websocket"]
        await asyncio.sleep(5)
        setups["rtp"].append(rtp["setup_ms"])
        setups["websocket"].append(ws["setup_ms"])
        if rtp["onset"] and ws["onset"]:
            onsets.append((ws["onset"] - rtp["onset"]) * 1000)
        await rtp["close"]()
        await ws["close"]()
        await running
    figures = {"media.rtp.setup_ms": round(float(np.median(setups["rtp"])), 1),
               "media.websocket.setup_ms": round(float(np.median(setups["websocket"])), 1),
               "media.onset_ws_minus_rtp_ms": round(float(np.mean(onsets)), 1) if onsets else None}
    details = {"onsets_ws_minus_rtp_ms (rtp opened first, ws first, ...)": [round(o, 1) for o in onsets]}
    apid = runner.asterisk_pid(config)
    for kind in ("rtp", "websocket"):
        callers = [call(f"1998{kind[0]}{i:02d}", 12) for i in range(streams)]
        channels = [await answered.get() for _ in range(streams)]
        await asyncio.sleep(1)
        own, ast, t0 = time.process_time(), cpu_seconds(apid), time.monotonic()
        await asyncio.sleep(3)
        base_own = (time.process_time() - own) / (time.monotonic() - t0)
        base_ast = (cpu_seconds(apid) - ast) / (time.monotonic() - t0)
        taps = [await tap.open(c, kind) for c in channels]
        await asyncio.sleep(1)
        own, ast, t0 = time.process_time(), cpu_seconds(apid), time.monotonic()
        await asyncio.sleep(5)
        wall = time.monotonic() - t0
        figures[f"media.{kind}.cpu_pct_per_stream"] = round(
            ((time.process_time() - own) / wall - base_own) * 100 / streams, 3)
        figures[f"media.{kind}.asterisk_pct_per_stream"] = round(
            ((cpu_seconds(apid) - ast) / wall - base_ast) * 100 / streams, 3)
        details[f"{kind}_frames_per_s"] = round(sum(t["frames"] for t in taps) / streams / 6, 1)
        for t in taps:
            await t["close"]()
        await asyncio.gather(*callers)
    details["streams"] = streams
    return figures, details


# ------------------------------------------------------------------ main

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=30)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument("--media", action="store_true", help="only the audio transport measurement")
    p.add_argument("--streams", type=int, default=8, help="--media: concurrent streams")
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE)
    p.add_argument("--save-baseline", action="store_true")
    p.add_argument("--keep", action="store_true", help="keep the temp state dir")
    p.add_argument("--profile", type=Path, metavar="OUT",
                   help="calls: py-spy samples of serve over the measured window (raw format)")
    p.add_argument("--ari-rest", choices=("auto", "websocket", "http"), default="auto",
                   help="calls: serve's asterisk.ari_rest_transport (docs/decisions.md D26)")
    args = p.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.media:
        figures, details = asyncio.run(media_bench(args.streams, args.keep))
        params = {"streams": args.streams}
    else:
        figures, details = asyncio.run(calls_bench(args.calls, args.concurrency, args.keep,
                                                       args.profile, args.ari_rest))
        params = {"calls": args.calls, "concurrency": args.concurrency, "flow": "main_ko",
                  "keys": "2 during the question, 1 during the menu", "ari_rest": args.ari_rest}
    host = {"machine": platform.machine(), "python": platform.python_version(),
            "cpus": os.cpu_count(), "load_1min": round(os.getloadavg()[0], 2),
            "asterisk": "22"}
    baseline = load_baseline(args.baseline)
    if baseline:
        print(f"baseline: {args.baseline} saved {baseline.get('saved_at')}")
    else:
        print(f"baseline: none at {args.baseline} (run with --save-baseline)")
    title = "IVR media transports" if args.media else (
        f"IVR calls: {args.calls} DTMF calls through main_ko, {args.concurrency} at a time")
    rows = tuple(r for r in ROWS if r.key.startswith("media." if args.media else "calls."))
    print("\n".join(table(title, rows, figures, baseline)))
    for key, value in details.items():
        print(f"  {key}: {value}")
    print(f"1-min load average {host['load_1min']}")
    if args.save_baseline:
        merged = dict((baseline or {}).get("figures", {}))
        merged.update(figures)
        run = make_run(merged, {**(baseline or {}).get("params", {}), **params}, host,
                       {**(baseline or {}).get("details", {}), **details})
        save_baseline(args.baseline, run)
        print(f"baseline saved to {args.baseline}")
    return 0 if figures.get("calls.failed", 0) == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
