"""Figures of one run printed beside a stored baseline run (bench/baselines/acd.json)."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

SCHEMA = 1
RATIO_TARGET_P50 = 1.2       # issue 10: CallPilot / app_queue on the same Asterisk
RATIO_TARGET_P95 = 1.3


@dataclass(frozen=True)
class Row:
    key: str
    label: str
    unit: str
    lower_is_better: bool = True


POLICY_ROWS = (
    Row("pass_busy.p50_ms", "dispatch pass, 10% agents free: p50", "ms"),
    Row("pass_busy.p99_ms", "dispatch pass, 10% agents free: p99", "ms"),
    Row("pass_busy.pairs", "  pairs decided per pass", "", False),
    Row("pass_busy.decisions_per_s", "  decisions/s", "/s", False),
    Row("pass_all_free.p50_ms", "dispatch pass, all agents free: p50", "ms"),
    Row("pass_all_free.p99_ms", "dispatch pass, all agents free: p99", "ms"),
    Row("pass_all_free.pairs", "  pairs decided per pass", "", False),
    Row("pass_all_free.decisions_per_s", "  decisions/s", "/s", False),
    Row("freed_agent.p50_ms", "one freed agent (assign): p50", "ms"),
    Row("freed_agent.p99_ms", "one freed agent (assign): p99", "ms"),
    Row("freed_agent.decisions_per_s", "  decisions/s", "/s", False),
    Row("dispatcher_pass.p50_ms", "one freed agent via acd.routing (views+assign+wakeup): p50", "ms"),
    Row("dispatcher_pass.p99_ms", "one freed agent via acd.routing: p99", "ms"),
    Row("dispatcher_pass.decisions_per_s", "  decisions/s", "/s", False),
    Row("freed_agent_incremental.p50_ms", "one freed agent, incremental router event: p50", "ms"),
    Row("freed_agent_incremental.p99_ms", "one freed agent, incremental router event: p99", "ms"),
    Row("freed_agent_incremental.calls_examined_max", "  calls examined per event (max)", "", True),
    Row("call_enters_incremental.p50_ms", "one call entering, incremental router event: p50", "ms"),
    Row("call_enters_incremental.p99_ms", "one call entering, incremental router event: p99", "ms"),
)

DISPATCHER_ROWS = (
    Row("dispatcher_freed_agent.p50_ms", "one freed agent, Dispatcher pass (views+router+offer+wakeup): p50", "ms"),
    Row("dispatcher_freed_agent.p99_ms", "one freed agent, Dispatcher pass: p99", "ms"),
    Row("dispatcher_hangup_and_pass.p99_ms", "  hang-up handling + pass: p99", "ms"),
    Row("dispatcher_freed_agent_full.p50_ms", "the same pass on the old full recomputation: p50", "ms"),
    Row("dispatcher_freed_agent_full.p99_ms", "the same pass on the old full recomputation: p99", "ms"),
    Row("dispatcher_freed_agent.ratio_p50", "  full / incremental p50 (same run)", "x", False),
    Row("loop_lag.p50_ms", "event-loop lag, 10 ms ticker, event stream: p50", "ms"),
    Row("loop_lag.p99_ms", "event-loop lag: p99 (target <= 20)", "ms"),
    Row("loop_lag.max_ms", "event-loop lag: max", "ms"),
    Row("loop_lag.offers", "  offers made during the stream", "", False),
    Row("loop_lag_full.p50_ms", "event-loop lag on the old full recomputation: p50", "ms"),
    Row("loop_lag_full.p99_ms", "event-loop lag on the old full recomputation: p99", "ms"),
    Row("loop_lag.ratio_p99", "  full / incremental p99 (same run)", "x", False),
)

LIVE_ROWS = (
    Row("live.app_queue.p50_ms", "app_queue  caller INVITE -> agent INVITE p50", "ms"),
    Row("live.app_queue.p95_ms", "app_queue  caller INVITE -> agent INVITE p95", "ms"),
    Row("live.app_queue.failed", "app_queue  failed calls", ""),
    Row("live.callpilot.p50_ms", "CallPilot  caller INVITE -> agent INVITE p50", "ms"),
    Row("live.callpilot.p95_ms", "CallPilot  caller INVITE -> agent INVITE p95", "ms"),
    Row("live.callpilot.failed", "CallPilot  failed calls", ""),
    Row("live.ratio.p50", "ratio CallPilot / app_queue p50 (target <= 1.2)", "x"),
    Row("live.ratio.p95", "ratio CallPilot / app_queue p95 (target <= 1.3)", "x"),
    Row("live.ratio.floor_p50", "  p50 ratio if serve took 0 ms (Asterisk's own part)", "x"),
    Row("live.ratio.asterisk_after_rtp_p50", "  Asterisk after Answer(): (Stasis() + originate) / Queue() p50", "x"),
    Row("live.app_queue.answer_p50_ms", "app_queue  INVITE -> 200 OK (Answer) p50", "ms"),
    Row("live.app_queue.after_answer_p50_ms", "app_queue  200 OK -> agent INVITE p50", "ms"),
    Row("live.callpilot.answer_p50_ms", "CallPilot  INVITE -> 200 OK (Answer) p50", "ms"),
    Row("live.callpilot.after_answer_p50_ms", "CallPilot  200 OK -> agent INVITE p50", "ms"),
    Row("live.app_queue.answer_to_rtp_p50_ms", "app_queue  200 OK -> caller's first RTP (sipp) p50", "ms"),
    Row("live.app_queue.rtp_to_agent_p50_ms", "app_queue  first RTP -> agent INVITE (Queue()) p50", "ms"),
    Row("live.callpilot.answer_to_rtp_p50_ms", "CallPilot  200 OK -> caller's first RTP (sipp) p50", "ms"),
    Row("live.callpilot.rtp_to_agent_p50_ms", "CallPilot  first RTP -> agent INVITE p50", "ms"),
    Row("live.callpilot.invite_to_stasis_p50_ms", "  CallPilot: INVITE -> StasisStart frame p50", "ms"),
    Row("live.callpilot.rtp_to_stasis_p50_ms", "  CallPilot: first RTP -> StasisStart frame (Stasis()) p50", "ms"),
    Row("live.callpilot.stasis_to_originate_p50_ms", "  CallPilot: StasisStart -> POST originate (serve) p50", "ms"),
    Row("live.callpilot.stasis_to_park_p50_ms", "  CallPilot: StasisStart -> POST addChannel (hold) p50", "ms"),
    Row("live.callpilot.park_ari_p50_ms", "  CallPilot: addChannel request -> reply p50", "ms"),
    Row("live.callpilot.park_to_originate_p50_ms", "  CallPilot: addChannel reply -> POST originate p50", "ms"),
    Row("live.callpilot.originate_to_agent_invite_p50_ms", "  CallPilot: POST originate -> agent INVITE p50", "ms"),
    Row("live.callpilot.originate_ari_p50_ms", "  CallPilot: originate request -> reply (agent channel made) p50", "ms"),
    Row("live.callpilot.originate_reply_to_agent_invite_p50_ms", "  CallPilot: originate reply -> agent INVITE p50", "ms"),
    Row("live.bare.p50_ms", "bare ARI app (no ACD) caller INVITE -> agent INVITE p50", "ms"),
    Row("live.bare.p95_ms", "bare ARI app (no ACD) caller INVITE -> agent INVITE p95", "ms"),
    Row("live.bare.failed", "bare ARI app failed calls", ""),
    Row("live.ratio.bare_p50", "ratio bare ARI app / app_queue p50 (the floor of an ARI app here)", "x"),
    Row("live.ratio.bare_p95", "ratio bare ARI app / app_queue p95", "x"),
    Row("live.ratio.callpilot_over_bare_p50", "  CallPilot / bare ARI app p50 (what the ACD adds)", "x"),
    Row("live.bare.invite_to_stasis_p50_ms", "  bare: INVITE -> StasisStart frame p50", "ms"),
    Row("live.bare.stasis_to_originate_p50_ms", "  bare: StasisStart -> POST originate (the app) p50", "ms"),
    Row("live.bare.originate_to_agent_invite_p50_ms", "  bare: POST originate -> agent INVITE p50", "ms"),
    Row("live.raw.p50_ms", "raw ARI app (asyncio.Protocol) caller INVITE -> agent INVITE p50", "ms"),
    Row("live.raw.p95_ms", "raw ARI app (asyncio.Protocol) caller INVITE -> agent INVITE p95", "ms"),
    Row("live.raw.failed", "raw ARI app failed calls", ""),
    Row("live.ratio.raw_p50", "ratio raw ARI app / app_queue p50 (the floor of Python here)", "x"),
    Row("live.ratio.raw_p95", "ratio raw ARI app / app_queue p95", "x"),
    Row("live.raw.stasis_to_originate_p50_ms", "  raw: StasisStart -> POST originate (the app) p50", "ms"),
    Row("live.raw.originate_to_agent_invite_p50_ms", "  raw: POST originate -> agent INVITE p50", "ms"),
)


def load_baseline(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    if data.get("schema") != SCHEMA:
        raise ValueError(f"{path}: baseline schema {data.get('schema')!r}, expected {SCHEMA}")
    return data


def save_baseline(path: Path, run: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(run, indent=2, sort_keys=True, default=_json_default) + "\n")


def make_run(figures: dict[str, Any], params: dict[str, Any], host: dict[str, Any],
             details: dict[str, Any]) -> dict[str, Any]:
    return {"schema": SCHEMA, "saved_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "host": host, "params": params, "figures": figures, "details": details}


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    return str(value)


def _fmt(value: Any, unit: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "/s":
        return f"{value:,.0f}/s" if value >= 100 else f"{value:.2f}/s"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "ms":
        return f"{value:.1f} ms" if value >= 10 else f"{value:.2f} ms"
    if isinstance(value, float) and value.is_integer():
        return f"{int(value)}"
    return f"{value}"


def _ratio(value: Any, base: Any) -> str:
    if not isinstance(value, (int, float)) or not isinstance(base, (int, float)):
        return "-"
    if base == 0:
        return "=" if value == 0 else "new"
    return f"{value / base:.2f}"


def table(title: str, rows: tuple[Row, ...], figures: dict[str, Any],
          baseline: dict[str, Any] | None) -> list[str]:
    base = (baseline or {}).get("figures", {})
    present = [r for r in rows if r.key in figures or r.key in base]
    if not present:
        return []
    width = max(len(r.label) for r in present)
    lines = [title, f"  {'figure':<{width}}  {'this run':>12}  {'baseline':>12}  {'run/base':>8}"]
    for r in present:
        value, ref = figures.get(r.key), base.get(r.key)
        mark = _mark(r, value, ref)
        lines.append(f"  {r.label:<{width}}  {_fmt(value, r.unit):>12}  {_fmt(ref, r.unit):>12}  "
                     f"{_ratio(value, ref):>8}{mark}")
    return lines


def _mark(row: Row, value: Any, ref: Any) -> str:
    """' worse' when more than 25 % worse than the baseline (noise on a shared box is ~10 %)."""
    if not isinstance(value, (int, float)) or not isinstance(ref, (int, float)) or ref == 0:
        return ""
    ratio = value / ref
    worse = ratio > 1.25 if row.lower_is_better else ratio < 0.8
    return "  worse" if worse else ""


def targets(figures: dict[str, Any]) -> tuple[list[str], bool]:
    """The live targets: CallPilot/app_queue <= 1.2 at p50 and <= 1.3 at p95, zero failed
    calls."""
    if "live.ratio.p50" not in figures:
        return [], True
    ratio, ratio95 = figures.get("live.ratio.p50"), figures.get("live.ratio.p95")
    failed = (figures.get("live.callpilot.failed") or 0) + (figures.get("live.app_queue.failed") or 0)
    ok_ratio = ratio is not None and ratio <= RATIO_TARGET_P50
    ok_ratio95 = ratio95 is not None and ratio95 <= RATIO_TARGET_P95
    ok_failed = failed == 0 and ratio is not None
    lines = ["targets",
             f"  CallPilot/app_queue p50 {_fmt(ratio, 'x')} <= {RATIO_TARGET_P50:.1f}x: "
             f"{'MET' if ok_ratio else 'MISSED'}",
             f"  CallPilot/app_queue p95 {_fmt(ratio95, 'x')} <= {RATIO_TARGET_P95:.1f}x: "
             f"{'MET' if ok_ratio95 else 'MISSED'}",
             f"  failed calls {failed} (CallPilot {figures.get('live.callpilot.failed')}, "
             f"app_queue {figures.get('live.app_queue.failed')}) == 0: {'MET' if ok_failed else 'MISSED'}"]
    for path, what in (("bare", "serve's ARI client, no ACD"), ("raw", "bare asyncio.Protocol, no client")):
        p50, p95 = figures.get(f"live.ratio.{path}_p50"), figures.get(f"live.ratio.{path}_p95")
        if p50 is not None:      # information only (D41): what an app that decides nothing reaches
            lines.append(f"  for reference, {path} ARI app ({what}) / app_queue: p50 {_fmt(p50, 'x')}, "
                         f"p95 {_fmt(p95, 'x')}")
    return lines, ok_ratio and ok_ratio95 and ok_failed


def params_differ(params: dict[str, Any], baseline: dict[str, Any] | None) -> list[str]:
    if not baseline:
        return []
    old = baseline.get("params", {})
    return [f"{k}: baseline {old.get(k)!r}, this run {v!r}" for k, v in params.items()
            if k in old and old.get(k) != v]
