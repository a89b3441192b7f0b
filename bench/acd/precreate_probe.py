"""Probe (D37): originate vs. a pre-created agent channel's ``dial``, side by side.

One isolated Asterisk, sipp callers into ``Stasis(callpilot,enqueue,bench)`` (the bench's
CallPilot DID) with THIS script as the ``callpilot`` application (no serve), agent phones
that answer.  For each caller's StasisStart, alternately:

* ``originate``: ``POST /channels/cp-agent-<call>-1`` as the ACD sends it today;
* ``dial``: the agent channel was made earlier with ``POST /channels/create`` (here right at
  the StasisStart, then a pause standing for the ~4 ms between AMI Newchannel and the
  StasisStart), and the measured step is ``POST /channels/<id>/dial``.

Measured from a dumpcap capture on lo: request frame (REST over the events socket) -> the
agent INVITE leaving Asterisk.  Run: ``python -m bench.acd.precreate_probe [calls]``.
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from bench.acd import sipcap
from bench.acd.live import ACD_DID, TRUNK_IP, bench_config, seed_agents
from callpilot.infra.asterisk import runner
from callpilot.infra.asterisk.ari import AriClient
from testkit import sipua

AGENTS = 6
# mode -> seconds between the create's reply and the dial (None: today's originate); ~5 ms is
# the Newchannel -> StasisStart window live, 20 ms a colder channel
MODES = {"originate": None, "dial-20ms": 0.020, "dial-5ms": 0.005}


class Probe:
    def __init__(self, calls: int):
        self.calls = calls
        self.dir = Path(tempfile.mkdtemp(prefix="callpilot-precreate-probe-"))
        self.config = bench_config(self.dir / "state")
        self.mode: dict[str, str] = {}          # agent channel id -> mode
        self.events: dict[str, list[str]] = defaultdict(list)
        self.exts = itertools.cycle([str(2001 + i) for i in range(AGENTS)])
        self.modes = itertools.cycle(MODES)
        self.tasks: set[asyncio.Task] = set()
        self.number_of: dict[str, str] = {}     # call id -> caller number

    async def run(self) -> None:
        a = self.config.asterisk
        passwords = seed_agents(self.config, AGENTS)
        await asyncio.to_thread(runner.up, self.config)
        s = self.config.secrets
        self.ari = AriClient(self.config.ari_client_url, s.ari_user, s.ari_password, a.app_name)
        self.ari.on_event(self.on_event)
        reader = asyncio.create_task(self.ari.run())
        phones = [sipua.AgentPhone(ext, pw, a.sip_host, a.sip_port, behaviour="answer",
                                   answer_delay=0.2, calls=10_000, timeout=600)
                  for ext, pw in sorted(passwords.items())]
        try:
            await asyncio.wait_for(self.ari.connected.wait(), 20)
            await asyncio.gather(*(p.start() for p in phones))
            capture = sipcap.Capture(self.dir / "probe.pcap",
                                     f"udp port {a.sip_port} or tcp port {a.ari_port}").start()
            scenario = sipua.caller_scenario(ACD_DID, "49[call_number]", "", 1.0, 1.0, 15,
                                             sipua.G711A_PCAP)
            sipp = sipua.SippProcess("probe", scenario, [
                f"{a.sip_host}:{a.sip_port}", "-i", TRUNK_IP, "-p", str(sipua.free_port(TRUNK_IP)),
                "-r", "2", "-rp", "1000", "-m", str(self.calls), "-l", str(self.calls),
                "-mi", TRUNK_IP, "-mp", str(sipua.media_port(TRUNK_IP))], self.calls / 2 + 40)
            await sipp.start()
            await sipp.wait(self.calls / 2 + 50)
            await asyncio.sleep(1.0)
            capture.stop()
            self.report(capture.path)
        finally:
            for p in phones:
                with contextlib.suppress(Exception):
                    await p.stop()
            reader.cancel()
            with contextlib.suppress(Exception):
                await self.ari.close()
            await asyncio.to_thread(runner.down, self.config)
            shutil.rmtree(self.dir, ignore_errors=True)

    async def on_event(self, event: dict) -> None:
        kind = event.get("type", "")
        channel = event.get("channel") or {}
        cid = channel.get("id", "")
        if cid.startswith("cp-agent-"):
            self.events[cid].append(f"{kind}:{channel.get('state', '')}"
                                    f"{':' + event.get('dialstatus', '') if kind == 'Dial' else ''}")
        if kind == "StasisStart" and (event.get("args") or [""])[0] == "enqueue":
            self._spawn(self.leg(cid, channel["caller"]["number"]))
        elif kind == "StasisStart" and cid.startswith("cp-agent-") and self.mode.get(cid) == "originate":
            self._spawn(self.ari.delete(f"/channels/{cid}"))     # answered: done with it
        elif kind == "Dial" and event.get("dialstatus") == "ANSWER":
            peer = (event.get("peer") or {}).get("id", "")
            if self.mode.get(peer, "").startswith("dial"):
                self._spawn(self.ari.delete(f"/channels/{peer}"))

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def leg(self, call_id: str, number: str) -> None:
        agent_id = f"cp-agent-{call_id}-1"
        endpoint = f"PJSIP/{next(self.exts)}"
        self.number_of[call_id] = number
        mode = self.mode[agent_id] = next(self.modes)
        if MODES[mode] is None:
            await self.ari.post(f"/channels/{agent_id}", endpoint=endpoint, app="callpilot",
                                appArgs=f"agent,{call_id}", timeout=15, callerId=number,
                                originator=call_id)
            return
        await self.ari.post("/channels/create", {"variables": {"CALLERID(num)": number}},
                            endpoint=endpoint, app="callpilot", appArgs=f"agent,{call_id}",
                            channelId=agent_id, originator=call_id)
        await asyncio.sleep(MODES[mode])
        await self.ari.post(f"/channels/{agent_id}/dial", timeout=15, caller=call_id)

    def report(self, pcap: Path) -> None:
        a = self.config.asterisk
        packets = sipcap.read_pcap(pcap)
        calls = sipcap.correlate(sipcap.sip_messages(packets, a.sip_port), a.sip_port, TRUNK_IP, "49")
        by_mode, by_mode_reply, after_reply = self._samples(ws_requests(packets, a.ari_port), calls)
        for mode in MODES:
            v, r = by_mode[mode], by_mode_reply[mode]
            if v:
                print(f"{mode:>9}: n {len(v)}  request -> agent INVITE p50 {statistics.median(v):.3f} ms"
                      f"  p95 {sorted(v)[int(0.95 * (len(v) - 1))]:.3f} ms;"
                      f"  request -> reply p50 {statistics.median(r) if r else float('nan'):.3f} ms"
                      f"  reply -> INVITE p50 {statistics.median(after_reply[mode]) if r else float('nan'):.3f} ms")
        for mode, events in [(m, self.events[c]) for c, m in list(self.mode.items())[:len(MODES)]]:
            print(f"events ({mode}): {events}")
        from_users = {t.number for t in calls.values() if t.agent_invite is not None}
        print(f"agent INVITEs with the caller's number in From: {len(from_users)} of {len(self.mode)}")

    def _samples(self, requests, calls):
        """ms per mode: request -> agent INVITE, request -> reply, reply -> agent INVITE."""
        by_mode: dict[str, list[float]] = defaultdict(list)
        by_mode_reply: dict[str, list[float]] = defaultdict(list)
        after_reply: dict[str, list[float]] = defaultdict(list)
        for (ts, reply, method, uri) in requests:
            path = uri.split("?")[0].strip("/")
            parts = path.split("/")
            if method != "POST" or len(parts) < 2 or not parts[1].startswith("cp-agent-"):
                continue
            agent_id = parts[1]
            mode = self.mode.get(agent_id, "")
            if (mode == "originate" and len(parts) == 2) or (mode.startswith("dial") and parts[-1] == "dial"):
                call_id = agent_id[len("cp-agent-"):].rsplit("-", 1)[0]
                times = calls.get(self.number_of.get(call_id, ""))
                invite = times.agent_invite if times is not None else None
                if invite is not None:
                    by_mode[mode].append((invite - ts) * 1000)
                    if reply:
                        by_mode_reply[mode].append((reply - ts) * 1000)
                        after_reply[mode].append((invite - reply) * 1000)
        return by_mode, by_mode_reply, after_reply


def ws_requests(packets, ari_port):
    """(request ts, reply ts, method, uri) of every REST request over the events socket."""
    flows = defaultdict(list)
    for packet in packets:
        if packet.proto == "tcp" and ari_port in (packet.sport, packet.dport) and packet.payload:
            flows[(packet.src, packet.sport, packet.dst, packet.dport)].append(packet)
    reqs, replies = {}, {}
    for (_s, _sp, _d, dport), segs in flows.items():
        segs = sipcap._dedupe(segs)
        if dport == ari_port and sipcap._is_events_socket(segs):
            for ts, text in sipcap._ws_frames(segs, masked=True):
                sipcap._rest_request(ts, text, reqs)
        elif sipcap._looks_like_websocket(segs):
            for ts, text in sipcap._ws_frames(segs):
                sipcap._rest_response(ts, text, replies)
    return [(ts, replies.get(rid), method, uri) for rid, (ts, method, uri) in reqs.items()]


async def main() -> None:
    calls = int(sys.argv[1]) if len(sys.argv) > 1 else 40
    probe = Probe(calls)
    started = time.monotonic()
    await probe.run()
    print(f"({time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    asyncio.run(main())
