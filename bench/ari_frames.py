"""serve's ARI frame path in one process, code trees side by side (docs/decisions.md D35).

``python -m bench.ari_frames --tree /path/to/main --tree .``: for each tree, in turn
(``--rounds`` times), serve's own ``AriClient`` and ``StasisRouter`` from that tree run against a
stand-in Asterisk in another process, which pushes a StasisStart frame every ``--interval``
seconds and answers requests on the events socket.  Two figures per frame:

* frame read -> role handler: from the socket's ``data_received`` to the ``enqueue`` role
  handler's first line (aiohttp's reader, JSON, lanes, router);
* originate -> frame written: from ``ari.post(originate)`` to the transport's ``write`` of
  its frame (the client's request path and aiohttp's writer, not the syscall).

p50 and p95 per run, and each tree's median p50 over the rounds as a ratio to the first
tree's, printed with the 1-min load.  Between frames the loop is idle, so the code runs
cold as between live calls; compare only figures of one run.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SKIP = 20          # first frames: imports, first-call caches
# this file run as a script (``-P``: not its folder on the path, where bench/acd would hide acd),
# so a tree without it (main) is measured with the same harness
_SELF = (sys.executable, "-P", str(Path(__file__).resolve()))


def stasis_start(i: int) -> str:
    cid = f"1764622800.{1000 + i}"
    return json.dumps({
        "type": "StasisStart", "timestamp": "2026-12-01T21:00:00.123+0000",
        "args": ["enqueue", "billing"],
        "channel": {"id": cid, "name": f"PJSIP/trunk-{i:08x}", "state": "Up",
                    "protocol_id": f"{i}-abcdef0123456789@127.0.0.1",
                    "caller": {"name": "Caller", "number": "+15550101234"},
                    "connected": {"name": "", "number": ""}, "accountcode": "",
                    "dialplan": {"context": "callpilot-inbound", "exten": "800", "priority": 4,
                                 "app_name": "Stasis", "app_data": "callpilot,enqueue,billing"},
                    "creationtime": "2026-12-01T21:00:00.100+0000", "language": "en"},
        "asterisk_id": "52:54:00:12:34:56", "application": "callpilot"})


# -- the stand-in Asterisk (its own process) ------------------------------------------------
def serve(port: int, frames: int, interval: float) -> None:
    import aiohttp
    from aiohttp import web

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        started = False
        async for msg in ws:
            frame = json.loads(msg.data) if msg.type is aiohttp.WSMsgType.TEXT else {}
            if frame.get("type") != "RESTRequest":
                continue
            await ws.send_str(json.dumps({
                "type": "RESTResponse", "request_id": frame["request_id"], "transaction_id": "",
                "status_code": 200, "reason_phrase": "OK", "uri": frame["uri"],
                "content_type": "application/json", "message_body": '{"id": "x"}'}))
            if frame["uri"].endswith("eventFilter") and not started:
                started = True
                asyncio.create_task(push(ws))
        return ws

    async def push(ws: web.WebSocketResponse) -> None:
        await asyncio.sleep(0.5)
        for i in range(frames):
            await ws.send_str(stasis_start(i))
            await asyncio.sleep(interval)
        await asyncio.sleep(0.3)
        await ws.send_str(json.dumps({"type": "BenchDone"}))

    app = web.Application()
    app.router.add_get("/ari/events", events)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None)


# -- one measured run (a process with the tree under test first on the path) ---------------
class _WriteTap:
    """The ws writer's transport, timing the first write after a mark."""

    def __init__(self, inner, marks: dict, out: list[int]):
        self.inner, self.marks, self.out = inner, marks, out

    def write(self, data) -> None:
        if self.marks["post"]:
            self.out.append(time.perf_counter_ns() - self.marks["post"])
            self.marks["post"] = 0
        self.inner.write(data)

    def __getattr__(self, name):
        return getattr(self.inner, name)


async def measure(port: int, frames: int, interval: float) -> dict:
    from callpilot.infra.asterisk.ari import AriClient
    from callpilot.infra.asterisk.channel_events import (HANDLED_EVENTS, ChannelInboxes,
                                                         StasisRouter, lane_of)
    server = subprocess.Popen([*_SELF, "--serve", str(port), "--frames", str(frames),
                               "--interval", str(interval)])
    await asyncio.sleep(1.0)
    ari = AriClient(f"http://127.0.0.1:{port}", "u", "p", "callpilot", lane_of=lane_of,
                    events=HANDLED_EVENTS)
    router = StasisRouter(ChannelInboxes())
    marks = {"chunk": 0, "post": 0}
    to_role: list[int] = []
    to_write: list[int] = []
    done = asyncio.Event()

    async def enqueue(channel: dict, args: list[str]) -> None:
        to_role.append(time.perf_counter_ns() - marks["chunk"])
        cid = channel["id"]
        marks["post"] = time.perf_counter_ns()
        await ari.post(f"/channels/cp-agent-{cid}-1", endpoint="PJSIP/agent1001", app="callpilot",
                       appArgs=f"agent,{cid}", timeout=15, callerId='"Caller" <+15550101234>',
                       originator=cid)

    async def listener(event: dict) -> None:       # as serve's: the ACD, callbacks, outbound
        if event.get("type") == "BenchDone":
            done.set()

    router.role("enqueue", enqueue)
    for _ in range(4):
        router.listen(listener)
    ari.on_event(router.on_event)
    runner = asyncio.create_task(ari.run())
    try:
        while ari._ws is None:
            await asyncio.sleep(0.005)
        ws = ari._ws
        protocol = ws._conn.protocol if ws._conn is not None else ws._response.connection.protocol
        received = protocol.data_received

        def data_received(data: bytes) -> None:
            marks["chunk"] = time.perf_counter_ns()
            received(data)
        protocol.data_received = data_received
        ws._writer.transport = _WriteTap(ws._writer.transport, marks, to_write)
        await asyncio.wait_for(done.wait(), frames * interval * 3 + 30)
    finally:
        await ari.close()
        runner.cancel()
        server.terminate()
        server.wait()
    return {"to_role": _p(to_role[SKIP:]), "to_write": _p(to_write[SKIP:])}


def _p(values: list[int]) -> dict:
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] / 1000  # noqa: E731
    return {"p50": pick(0.5), "p95": pick(0.95), "n": len(ordered)}


# -- the driver ------------------------------------------------------------------------------
def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def run_tree(tree: Path, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))      # that tree's callpilot, this file
    out = subprocess.run([*_SELF, "--measure",
                          "--port", str(args.port), "--frames", str(args.frames),
                          "--interval", str(args.interval)],
                         env=env, cwd=tree, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m bench.ari_frames", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--tree", type=Path, action="append", help="a code tree (repeat; first = base)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--interval", type=float, default=0.02, help="seconds between StasisStart frames")
    p.add_argument("--port", type=int, default=18765)
    p.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        return serve(args.serve, args.frames, args.interval)
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.port, args.frames, args.interval))))
        return
    trees = [t.resolve() for t in (args.tree or [Path(".")])]
    medians: dict[Path, dict[str, list[float]]] = {t: {"to_role": [], "to_write": []} for t in trees}
    print(f"load at start {load()}")
    for r in range(args.rounds):
        for tree in trees:
            got = run_tree(tree, args)
            for key in medians[tree]:
                medians[tree][key].append(got[key]["p50"])
            print(f"round {r + 1} {tree}: frame read -> role handler p50 {got['to_role']['p50']:.0f} us "
                  f"p95 {got['to_role']['p95']:.0f}; originate -> frame written p50 "
                  f"{got['to_write']['p50']:.0f} us p95 {got['to_write']['p95']:.0f} (load {load()})")
    base = trees[0]
    for tree in trees:
        role, write = (statistics.median(medians[tree][k]) for k in ("to_role", "to_write"))
        ratio = "" if tree == base else (
            f"  = {role / statistics.median(medians[base]['to_role']):.2f}x / "
            f"{write / statistics.median(medians[base]['to_write']):.2f}x of the first tree's")
        print(f"{tree}: median p50 {role:.0f} us / {write:.0f} us{ratio}")


if __name__ == "__main__":
    main()
