"""``python -m bench.acd``: ACD benchmark, figures printed beside the stored baseline.

(a) the pure routing policy at 1,000 agents x 10,000 waiting calls (see policy_bench.py);
(c) serve's Dispatcher at the same scale, fake call control: one freed agent, and the event
    loop's lag under a stream of events, beside the full recomputation it replaced (see
    loop_bench.py);
(b) live on one bench-owned Asterisk: caller INVITE -> agent INVITE through CallPilot's ACD
    and through app_queue, same agents, same load (see live.py).

``--save-baseline`` writes this run as the new baseline (bench/baselines/acd.json).
Exit status: 0 ok; 1 with ``--check`` when a live target is missed; 2 the bench failed.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):          # ``python bench/acd/__main__.py``: repo root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.acd import report  # noqa: E402

logger = logging.getLogger("bench.acd")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_BASELINE = REPO / "bench" / "baselines" / "acd.json"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.acd", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--baseline", type=Path, default=DEFAULT_BASELINE, help="baseline JSON to compare with")
    p.add_argument("--save-baseline", action="store_true", help="write this run as the baseline")
    p.add_argument("--only", choices=("policy", "dispatcher", "live"), help="run one part only")
    p.add_argument("--quick", action="store_true", help="fewer policy repetitions (smoke run)")
    p.add_argument("--agents", type=int, default=10, help="agent phones (live)")
    p.add_argument("--calls", type=int, default=40, help="measured calls per path (live)")
    p.add_argument("--warmup", type=int, default=2, help="extra first calls per path, not measured")
    p.add_argument("--rate", type=float, default=2.0, help="calls per second (live)")
    p.add_argument("--hold", type=float, default=1.5, help="seconds a caller stays after the answer")
    p.add_argument("--answer-delay", type=float, default=0.2, help="seconds an agent phone rings")
    p.add_argument("--rounds", type=int, default=4,
                   help="alternating app_queue/CallPilot rounds the calls are split into (1-9)")
    p.add_argument("--keep", action="store_true", help="keep the live state dir, capture and logs")
    p.add_argument("--json", type=Path, help="also write this run's results to this file")
    p.add_argument("--check", action="store_true", help="exit 1 when a live target is missed")
    p.add_argument("--ari-rest", choices=("auto", "websocket", "http"), default="auto",
                   help="serve's asterisk.ari_rest_transport (live; docs/decisions.md D26)")
    p.add_argument("-v", "--verbose", action="store_true")
    args = p.parse_args(argv)
    if not 1 <= args.agents <= 99:
        p.error("--agents: 1..99")
    if args.calls < 1 or args.rate <= 0 or args.hold < 0 or args.warmup < 0:
        p.error("--calls >= 1, --rate > 0, --hold >= 0, --warmup >= 0")
    if not 1 <= args.rounds <= 9:
        p.error("--rounds: 1..9")
    return args


class Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def log(self, message: str) -> None:
        print(f"[{time.monotonic() - self.start:6.1f}s] {message}", file=sys.stderr, flush=True)


def host_info(details: dict) -> dict:
    dirty = bool(_first_line(["git", "-C", str(REPO), "status", "--porcelain", "--untracked-files=no"]))
    return {"cpus": os.cpu_count(), "python": platform.python_version(), "machine": platform.machine(),
            "sipp": _first_line(["sipp", "-v"]), "asterisk": details.get("asterisk_version", ""),
            "commit": _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
            + (" + uncommitted changes" if dirty else "")}


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    lines = [line.strip() for line in (out.stdout + out.stderr).splitlines() if line.strip()]
    return lines[0] if lines else ""


def _loadavg() -> float | None:
    try:
        return float(Path("/proc/loadavg").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def params_of(args: argparse.Namespace) -> dict:
    return {"policy_agents": 1000, "policy_calls": 10000, "policy_queues": 10, "quick": args.quick,
            "live_agents": args.agents, "live_calls": args.calls, "live_warmup": args.warmup,
            "live_rate": args.rate, "live_hold": args.hold, "live_answer_delay": args.answer_delay,
            "live_rounds": args.rounds, "live_ari_rest": args.ari_rest}


async def _live(args: argparse.Namespace, clock: Clock) -> dict:
    from bench.acd import live
    opts = live.LiveOptions(agents=args.agents, calls=args.calls, warmup=args.warmup, rate=args.rate,
                            hold=args.hold, answer_delay=args.answer_delay, rounds=args.rounds,
                            keep=args.keep, ari_rest=args.ari_rest)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, task.cancel)     # clean up on SIGTERM as on Ctrl-C
    try:
        return await live.run(opts, clock.log)
    finally:
        loop.remove_signal_handler(signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    clock = Clock()
    load_start = _loadavg()
    baseline = report.load_baseline(args.baseline)
    figures: dict = {}
    details: dict = {}
    try:
        if args.only in (None, "policy"):
            from bench.acd import policy_bench
            figures.update(policy_bench.run(quick=args.quick, log=clock.log))
        if args.only in (None, "dispatcher"):
            from bench.acd import loop_bench
            figures.update(loop_bench.run(quick=args.quick, log=clock.log))
        if args.only in (None, "live"):
            result = asyncio.run(_live(args, clock))
            figures.update(result["figures"])
            details.update(result["details"])
    except (Exception, KeyboardInterrupt, asyncio.CancelledError) as exc:
        if args.verbose:
            logger.exception("benchmark failed")
        print(f"bench.acd: FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    details["loadavg"] = [load_start, _loadavg()]
    run = report.make_run(figures, params_of(args), host_info(details), details)
    _print(run, baseline, args, clock)
    if args.json:
        report.save_baseline(args.json, run)
    if args.save_baseline:
        report.save_baseline(args.baseline, run)
        print(f"baseline saved to {args.baseline}")
    _, ok = report.targets(figures)
    return 1 if args.check and not ok else 0


def _print(run: dict, baseline: dict | None, args: argparse.Namespace, clock: Clock) -> None:
    figures, details = run["figures"], run["details"]
    h = run["host"]
    print()
    print(f"CallPilot ACD benchmark - {h['cpus']} CPUs, Python {h['python']}, "
          f"{h['asterisk'] or 'no Asterisk run'}; code {h['commit'] or '?'}")
    if baseline:
        b = baseline.get("host", {})
        print(f"baseline: {args.baseline} saved {baseline.get('saved_at')} "
              f"({b.get('cpus')} CPUs; code {b.get('commit', '?')})")
    else:
        print(f"baseline: none at {args.baseline} (run with --save-baseline)")
    load = details.get("loadavg") or [None, None]
    print(f"1-min load average {load[0]} at start, {load[1]} at end (figures are noisy when the "
          f"machine is shared; compare p50s, and the CallPilot/app_queue ratio of one run)")
    for line in report.params_differ(run["params"], baseline):
        print(f"  note: parameters differ from the baseline: {line}")
    print()
    for line in report.table("(a) pure policy: 1,000 agents, 10,000 waiting calls, 10 queues",
                             report.POLICY_ROWS, figures, baseline):
        print(line)
    lines = report.table("(c) serve's Dispatcher, fake call control: 1,000 agents, 10,000 waiting; "
                         "full recomputation in the same run", report.DISPATCHER_ROWS, figures, baseline)
    if lines:
        print()
        for line in lines:
            print(line)
    p = run["params"]
    title = (f"(b) live: {p['live_agents']} agent phones, {p['live_calls']} calls per path "
             f"(+{p['live_warmup']} warm-up) in {p['live_rounds']} alternating rounds, "
             f"{p['live_rate']:g} calls/s, hold {p['live_hold']:g} s,\n    callers sending RTP; "
             "kernel timestamps of the SIP packets on lo")
    lines = report.table(title, report.LIVE_ROWS, figures, baseline)
    if lines:
        print()
        for line in lines:
            print(line)
        for name in ("app_queue", "callpilot"):
            d = details.get(name, {})
            rounds = " / ".join(report._fmt(v, "ms") for v in d.get("round_p50_ms", []))
            print(f"  {name}: {d.get('calls')} calls, max {report._fmt(d.get('max_ms'), 'ms')}, "
                  f"agent re-rings {d.get('agent_retries')}, sipp exit {d.get('sipp_exit')}; "
                  f"p50 per round {rounds}")
            for failure in d.get("failures", []):
                print(f"    failed {failure}")
        log = details.get("serve_log", {})
        print(f"  serve.log: {log.get('lines')} lines, {log.get('warnings_errors')} warnings/errors")
        for problem in log.get("first_problems", []):
            print(f"    {problem}")
        print()
        for line in report.targets(figures)[0]:
            print(line)
    print(f"\ntotal {time.monotonic() - clock.start:.0f} s")


if __name__ == "__main__":
    sys.exit(main())
