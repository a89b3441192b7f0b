"""Who ended a call decides its outcome, and a caller in the menu survives a kill -9 of serve
(real Asterisk 22, real SIP UAs, each test on an instance of its own).

* Asterisk stopped gracefully (SIGTERM) under waiting callers: Asterisk hung them up, so the
  records say ``system``, and no ABANDON is counted.
* serve killed while a caller is in the main menu: the restarted serve resumes the caller in
  that menu node (same flow version); its next key is honoured and the record's menu path
  holds the keys from before and after the restart.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from callpilot.infra.asterisk import runner
from testkit.sipua import AgentPhone, Caller
from tests.e2e.serve_proc import ServeProcess, records_for, wait_record

pytestmark = pytest.mark.e2e


def trunk_call(cfg, number: str, dtmf: str, hold: float, **kwargs) -> Caller:
    a = cfg.asterisk
    return Caller("800", a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=number,
                  dtmf=dtmf, hold_seconds=hold, **kwargs)


async def settle(tasks: list[asyncio.Task]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_graceful_asterisk_stop_records_system_not_abandoned(own_instance):
    cfg, serve, _ = own_instance
    numbers = [f"1555090{i}" for i in range(3)]
    calls = [asyncio.create_task(trunk_call(cfg, n, "2", hold=60).run()) for n in numbers]
    try:
        await serve.wait_for(lambda s: s["queues"].get("cards", {}).get("waiting") == len(numbers),
                             timeout=60, what="three callers waiting in cards (no agent)")
        await asyncio.to_thread(runner.down, cfg)  # SIGTERM: Asterisk's own graceful stop
        records = [await wait_record(cfg, n, timeout=30) for n in numbers]
    finally:
        await settle(calls)
    assert [(r.queue, r.outcome) for r in records] == [("cards", "system")] * len(numbers), \
        [(r.outcome, r.detail) for r in records]
    assert all("ended by Asterisk" in r.detail for r in records), [r.detail for r in records]
    log = (Path(cfg.state_dir) / "queue_log").read_text().splitlines()
    ids = {r.id for r in records}
    assert not [line for line in log if "|ABANDON|" in line and line.split("|")[1] in ids]


async def test_kill_9_in_the_menu_resumes_the_menu_and_honours_the_next_key(own_instance):
    cfg, serve, passwords = own_instance
    a = cfg.asterisk
    agent = AgentPhone("1001", passwords["1001"], a.sip_host, a.sip_port)   # billing
    await agent.start()
    number = "15550911"
    # '9' (not an option) at 1 s, then '1' (billing) 16 s later, after the restart
    call = asyncio.create_task(trunk_call(cfg, number, "91", hold=45, dtmf_gap=16.0).run())
    restarted = None
    try:
        await until(lambda: _menu_path(cfg, number) == ["main_menu=9"], 30, "the '9' recorded")
        await serve.stopped(kill=True)            # SIGKILL while the caller is in the menu
        restarted = ServeProcess(cfg).start()
        await restarted.wait_ready()
        await agent.wait_for("answered", timeout=60)
        record = await wait_record(cfg, number, state="connected", timeout=20)
    finally:
        if restarted is not None:
            await restarted.stopped()
        await settle([call])
        await agent.unregister()
        await agent.stop()
    # before the kill, (a silence timed out while the menu was replayed, maybe), after it
    first, *between, last = record.menu_path
    assert (first, last) == ("main_menu=9", "main_menu=1"), record.menu_path
    assert set(between) <= {"main_menu=timeout"}, record.menu_path
    assert (record.queue, record.agent) == ("billing", "1001")
    path = record.journey["path"]
    assert path[:2] == ["greeting", "main_menu"] and path[-2:] == ["main_menu", "to_billing"], path
    assert [i["value"] for i in record.journey["inputs"] if i["kind"] == "dtmf"] == ["9", "1"]


def _menu_path(cfg, number: str) -> list[str] | None:
    rows = records_for(cfg, number)
    return rows[-1].menu_path if rows else None


async def until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.25)
