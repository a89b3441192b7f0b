"""``python -m bench.load``: a burst of calls on one bench-owned Asterisk, through app_queue and
through CallPilot's ACD, same agents, same run.

Reuses bench/acd/live.py's instance (isolated Asterisk, serve, queue ``bench``, DIDs 8500
app_queue / 8501 CallPilot, kernel timestamps of the SIP packets on lo).  Differences:

* the agent phones hang up themselves after a talk time (sipp ``hangup`` behaviour); each
  phone's talk time is drawn once, uniformly in ``--talk MIN MAX`` (seeded);
* one round per path (app_queue first, then CallPilot): ``--calls`` calls at ``--rate`` calls/s
  from one sipp caller, every caller sending G.711 RTP and waiting up to ``--patience``
  seconds after the answer before giving up (BYE: an abandon);
* per path, from each engine's queue_log (app_queue's own; CallPilot's state/queue_log in
  the same format): answered (CONNECT), abandoned (ABANDON, EXITWITHTIMEOUT, EXITEMPTY),
  failed (every other call placed: never connected nor abandoned, e.g. given up after failed
  bridges, or refused at the SIP level, whose reason the SIP capture gives); caller INVITE
  -> first agent INVITE p50/p95/p99, and over the round: serve's and Asterisk's CPU seconds
  (/proc utime+stime), serve's peak RSS (sampled every 0.5 s), serve's event-loop lag (its
  own ticker, ``CALLPILOT_LOOP_LAG_INTERVAL`` set to 10 ms for the run; p50/p99/max over the
  last 60 s, read at the end of the round).  Serve's figures in the app_queue round are what
  an idle serve costs beside app_queue.

Figures are printed beside the stored baseline (bench/baselines/load.json, written by
``--save-baseline``): CallPilot's figures and its ratios to app_queue of the same run, this run
against the baseline's.  Compare the ratios: the machine is shared, and the burst is bistable
(once serve falls behind, agents hang up before their bridge and the line backs up: D20).

Defaults (300 calls at 20 calls/s, 40 agents, talk 0.5-2.5 s, patience 40 s) take about 2-3
minutes.  With ``--talk 2 8`` the 40 agents serve ~8 calls/s: the line grows, and INVITE ->
agent INVITE is then mostly the queue's wait (a different question: how the engines order
and spread a backlog).  Needs root (Asterisk rootfs, dumpcap), like bench.acd's live part.  The machine is
shared: compare the two paths of one run, not runs.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.acd import live, report, sipcap  # noqa: E402
from bench.acd.__main__ import _loadavg, host_info  # noqa: E402
from callpilot.infra.asterisk import runner  # noqa: E402
from callpilot.infra.loop_health import INTERVAL_ENV  # noqa: E402
from testkit import sipua  # noqa: E402

logger = logging.getLogger("bench.load")
TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[1]
DEFAULT_BASELINE = REPO / "bench" / "baselines" / "load.json"
Row = report.Row
# CallPilot's figures and its same-run ratios to app_queue, against the stored baseline
BASELINE_ROWS = (
    Row("load.callpilot.answered", "CallPilot answered (CONNECT)", "", False),
    Row("load.callpilot.failed", "CallPilot failed (target 0)", ""),
    Row("load.callpilot.p50_ms", "CallPilot INVITE -> agent INVITE p50", "ms"),
    Row("load.callpilot.p95_ms", "CallPilot INVITE -> agent INVITE p95", "ms"),
    Row("load.callpilot.p99_ms", "CallPilot INVITE -> agent INVITE p99", "ms"),
    Row("load.ratio.p50", "  CallPilot / app_queue p50 (same run)", "x"),
    Row("load.ratio.p95", "  CallPilot / app_queue p95 (same run)", "x"),
    Row("load.ratio.p99", "  CallPilot / app_queue p99 (same run)", "x"),
    Row("load.callpilot.serve_loop_lag_p99_ms", "serve loop lag p99 (CallPilot round)", "ms"),
    Row("load.callpilot.serve_rss_peak_mb", "serve RSS peak (MB)", ""),
    Row("load.callpilot.serve_cpu_s", "serve CPU, CallPilot round (s)", ""),
    Row("load.ratio.serve_cpu_to_asterisk", "  serve CPU / Asterisk CPU, CallPilot round", "x"),
    Row("load.ratio.asterisk_cpu", "  Asterisk CPU, CallPilot / app_queue round", "x"),
)


class LoadBench(live.LiveBench):
    paths = (("app_queue", live.APPQ_DID), ("callpilot", live.ACD_DID))   # no bare ARI app here
    # 2 legs x (RTP + RTCP) per call, hundreds of calls at once: with live's 400 ports the
    # callers beyond ~100 concurrent calls got 488 Not Acceptable Here on both paths
    rtp_block = 4000
    # hundreds of callers' RTP (up to --patience each) would swamp the capture and the machine
    capture_caller_rtp = False

    def __init__(self, opts: live.LiveOptions, log, talk: tuple[float, float], patience: float):
        super().__init__(opts, log)
        self.talk = talk
        self.patience = patience
        self.usage: dict[str, dict] = {}

    def _plan(self) -> list[live.Round]:
        return [live.Round(path, did, f"4{digit}1", self.opts.calls, 0)
                for digit, (path, did) in enumerate(self.paths, 1)]

    async def _start_phones(self, passwords: dict[str, str]) -> None:
        a, o = self.config.asterisk, self.opts
        rng = random.Random(20261201)
        for ext, password in sorted(passwords.items()):
            self.phones.append(sipua.AgentPhone(
                ext, password, a.sip_host, a.sip_port, behaviour="hangup",
                answer_delay=o.answer_delay, calls=100_000, timeout=1800,
                talk_seconds=rng.uniform(*self.talk)))
        await asyncio.gather(*(phone.start() for phone in self.phones))

    async def _run_round(self, r: live.Round) -> None:
        self.opts.hold = self.patience          # the caller's BYE after ``patience``: an abandon
        pids = {"serve": self.serve.proc.pid, "asterisk": runner.asterisk_pid(self.config)}
        before = {name: _cpu(pid) for name, pid in pids.items()}
        sampler = asyncio.create_task(_peak_rss(pids["serve"]))
        try:
            await super()._run_round(r)
            await self._drained(timeout=self.patience + self.talk[1] + 30)
        finally:
            sampler.cancel()
        peak = await asyncio.gather(sampler, return_exceptions=True)
        status = await self.serve.status()
        self.usage[r.path] = {
            "serve_cpu_s": _delta(before["serve"], _cpu(pids["serve"])),
            "asterisk_cpu_s": _delta(before["asterisk"], _cpu(pids["asterisk"])),
            "serve_rss_peak_mb": peak[0] if isinstance(peak[0], float) else None,
            "serve_loop_lag": status.get("loop_lag", {}),
            "wall_s": r.wall}

    async def _drained(self, timeout: float) -> None:
        """Every call of the round over in serve (the CallPilot round's last agent hung up)."""
        await self.serve.wait_for(lambda s: not s.get("calls"), timeout=timeout, what="no call left")

    def _analyse(self, rounds: list[live.Round]) -> dict:
        a = self.config.asterisk
        packets = sipcap.read_pcap(self.capture.path)
        calls = sipcap.correlate(sipcap.sip_messages(packets, a.sip_port), a.sip_port, live.TRUNK_IP, "4")
        figures: dict = {}
        details: dict = {"usage": self.usage, "asterisk_version": self.asterisk_version,
                         "serve_log": self._serve_log_summary()}
        logs = {"app_queue": self.config.asterisk_dir / "log" / "queue_log",
                "callpilot": self.config.state_dir / "queue_log"}
        for r in rounds:
            stats = _load_stats(r, calls, _queue_log_counts(logs[r.path]))
            details[r.path] = stats
            figures.update({f"load.{r.path}.{k}": v for k, v in stats.items() if k != "failures"})
            usage = self.usage.get(r.path, {})
            for key in ("serve_cpu_s", "asterisk_cpu_s", "serve_rss_peak_mb"):
                figures[f"load.{r.path}.{key}"] = usage.get(key)
            for key in ("p50_ms", "p99_ms", "max_ms"):
                figures[f"load.{r.path}.serve_loop_lag_{key}"] = usage.get("serve_loop_lag", {}).get(key)
        for q in ("p50", "p95", "p99"):
            figures[f"load.ratio.{q}"] = _ratio(figures.get(f"load.callpilot.{q}_ms"),
                                                figures.get(f"load.app_queue.{q}_ms"))
        figures["load.ratio.serve_cpu_to_asterisk"] = _ratio(figures.get("load.callpilot.serve_cpu_s"),
                                                             figures.get("load.callpilot.asterisk_cpu_s"))
        figures["load.ratio.asterisk_cpu"] = _ratio(figures.get("load.callpilot.asterisk_cpu_s"),
                                                    figures.get("load.app_queue.asterisk_cpu_s"))
        return {"figures": figures, "details": details}


def _ratio(mine: float | None, base: float | None) -> float | None:
    return mine / base if base and mine is not None else None


def _queue_log_counts(path: Path) -> dict[str, int]:
    """Events of queue ``bench`` by name (``time|callid|queue|agent|event|...``)."""
    counts: dict[str, int] = {}
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return counts
    for line in lines:
        fields = line.split("|")
        if len(fields) >= 5 and fields[2] == live.QUEUE:
            counts[fields[4]] = counts.get(fields[4], 0) + 1
    return counts


def _load_stats(r: live.Round, calls: dict[str, sipcap.CallTimes], log: dict[str, int]) -> dict:
    latencies: list[float] = []
    failures: list[str] = []
    for number, events in r.measured():
        times = calls.get(number)
        if times is not None and times.latency is not None:
            latencies.append(times.latency * 1000)
        why = live.setup_problem(times, events)
        if why:
            failures.append(f"{number}: {why}")
    answered = log.get("CONNECT", 0)
    abandoned = sum(log.get(e, 0) for e in ("ABANDON", "EXITWITHTIMEOUT", "EXITEMPTY"))
    stats = {"calls": r.calls, "answered": answered, "abandoned": abandoned,
             "failed": max(0, r.calls - answered - abandoned), "entered": log.get("ENTERQUEUE", 0),
             "failures": failures[:10], "sip_failures": len(failures), "sipp_exit": r.sipp_rc}
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        stats[f"{name}_ms"] = live._pct(latencies, q) if latencies else None
    stats["mean_ms"] = statistics.fmean(latencies) if latencies else None
    return stats


def _cpu(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS     # utime + stime


def _delta(before: float | None, after: float | None) -> float | None:
    return None if before is None or after is None else round(after - before, 2)   # ticks: 0.01 s


async def _peak_rss(pid: int) -> float:
    peak = 0.0
    try:
        while True:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    peak = max(peak, round(int(line.split()[1]) / 1024, 1))
            await asyncio.sleep(0.5)
    except (asyncio.CancelledError, OSError):
        return peak


ROWS = (("entered", "entered the queue", ""), ("answered", "answered (CONNECT)", ""),
        ("abandoned", "abandoned", ""), ("failed", "failed (target 0)", ""),
        ("p50_ms", "INVITE -> agent INVITE p50", "ms"), ("p95_ms", "INVITE -> agent INVITE p95", "ms"),
        ("p99_ms", "INVITE -> agent INVITE p99", "ms"),
        ("serve_loop_lag_p50_ms", "serve loop lag p50 (10 ms ticker)", "ms"),
        ("serve_loop_lag_p99_ms", "serve loop lag p99", "ms"), ("serve_loop_lag_max_ms", "serve loop lag max", "ms"),
        ("serve_rss_peak_mb", "serve RSS peak", "MB"), ("serve_cpu_s", "serve CPU during the round", "s"),
        ("asterisk_cpu_s", "Asterisk CPU during the round", "s"))


def _fmt(value, unit: str) -> str:
    if value is None:
        return "-"
    return f"{value:.2f} {unit}".strip() if isinstance(value, float) else f"{value} {unit}".strip()


def print_report(result: dict, opts: argparse.Namespace) -> None:
    f, d = result["figures"], result["details"]
    load = d.get("loadavg") or ["?", "?"]
    print(f"\nload: {opts.calls} calls at {opts.rate:g} calls/s per path, {opts.agents} agent phones "
          f"(talk {opts.talk[0]:g}-{opts.talk[1]:g} s), caller patience {opts.patience:g} s, callers "
          f"sending RTP; {d.get('asterisk_version')}; 1-min load {load[0]} at start, {load[1]} at end "
          "(shared machine: compare the two columns of this run only)")
    print(f"  {'figure':<36} {'app_queue':>12} {'CallPilot':>12} {'ratio':>8}")
    for key, label, unit in ROWS:
        a, c = f.get(f"load.app_queue.{key}"), f.get(f"load.callpilot.{key}")
        ratio = f"{c / a:.2f}x" if isinstance(a, (int, float)) and isinstance(c, (int, float)) and a else "-"
        print(f"  {label:<36} {_fmt(a, unit):>12} {_fmt(c, unit):>12} {ratio:>8}")
    for path in ("app_queue", "callpilot"):
        for failure in d.get(path, {}).get("failures", []):
            print(f"  {path}: SIP-level problem {failure}")
    log = d.get("serve_log", {})
    print(f"  serve.log: {log.get('lines')} lines, {log.get('warnings_errors')} warnings/errors")
    for problem in log.get("first_problems", []):
        print(f"    {problem}")


def print_baseline(run: dict, baseline: dict | None, path: Path) -> None:
    print()
    if baseline:
        b = baseline.get("host", {})
        loads = baseline.get("details", {}).get("loadavg")
        print(f"baseline: {path} saved {baseline.get('saved_at')} (code {b.get('commit', '?')}, "
              f"1-min load {loads})")
    else:
        print(f"baseline: none at {path} (run with --save-baseline)")
    for line in report.params_differ(run["params"], baseline):
        print(f"  note: parameters differ from the baseline: {line}")
    for line in report.table("this run against the baseline (ratios to app_queue are of each one's own run)",
                             BASELINE_ROWS, run["figures"], baseline):
        print(line)


def params_of(args: argparse.Namespace) -> dict:
    return {"agents": args.agents, "calls": args.calls, "rate": args.rate, "talk": list(args.talk),
            "patience": args.patience, "answer_delay": args.answer_delay}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--agents", type=int, default=40, help="agent phones (1-99)")
    p.add_argument("--calls", type=int, default=300, help="calls per path")
    p.add_argument("--rate", type=float, default=20.0, help="calls per second")
    p.add_argument("--talk", type=float, nargs=2, default=(0.5, 2.5), metavar=("MIN", "MAX"),
                   help="agent talk time range, seconds (one draw per phone); the default keeps "
                        "40 agents just ahead of 20 calls/s, so the latency is routing, not the "
                        "queue's wait (with 2-8 s the queue grows and waits dominate)")
    p.add_argument("--patience", type=float, default=40.0, help="seconds a caller waits after the answer")
    p.add_argument("--answer-delay", type=float, default=0.2, help="seconds an agent phone rings")
    p.add_argument("--keep", action="store_true", help="keep the state dir, capture and logs")
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="baseline JSON to compare with")
    p.add_argument("--save-baseline", action="store_true", help="write this run as the baseline")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if not 1 <= args.agents <= 99 or args.calls < 1 or args.rate <= 0 or args.talk[0] > args.talk[1]:
        p.error("--agents 1..99, --calls >= 1, --rate > 0, --talk MIN <= MAX")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault(INTERVAL_ENV, "0.01")      # serve's loop-lag ticker at 10 ms
    started = time.monotonic()
    load_start = _loadavg()
    baseline = report.load_baseline(args.baseline)

    def log(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", file=sys.stderr, flush=True)

    opts = live.LiveOptions(agents=args.agents, calls=args.calls, warmup=0, rate=args.rate,
                            hold=args.patience, answer_delay=args.answer_delay, rounds=1, keep=args.keep)
    try:
        result = asyncio.run(LoadBench(opts, log, tuple(args.talk), args.patience).run())
    except (Exception, KeyboardInterrupt) as exc:
        print(f"bench.load: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    result["details"]["loadavg"] = [load_start, _loadavg()]
    run = report.make_run(result["figures"], params_of(args), host_info(result["details"]), result["details"])
    print_report(run, args)
    print_baseline(run, baseline, args.baseline)
    if args.save_baseline:
        report.save_baseline(args.baseline, run)
        print(f"baseline saved to {args.baseline}")
    print(f"\ntotal {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
