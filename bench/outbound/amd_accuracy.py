"""How often Asterisk's AMD (amd.conf defaults) is right on synthetic callees, end to end:
``python -m bench.outbound.amd_accuracy``.

An isolated Asterisk + serve; one campaign (AMD on, a voicemail message); customer UAs (sipp
UAS on their own loopback addresses) answer with espeak-ng audio: people saying a short
greeting and then waiting, and answering machines with greetings of several lengths.  Prints
each callee's AMDSTATUS/AMDCAUSE and the confusion counts.  No key is pressed, so what is
measured is AMD alone (in calls, a key press overrides a MACHINE verdict).
"""
from __future__ import annotations

import asyncio
import json
import re
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from sqlalchemy import select

from callpilot.app import demo
from callpilot.infra.asterisk import runner
from callpilot.infra.config import OutboundConfig
from callpilot.infra.db import session as db
from callpilot.infra.db.campaigns import CampaignAttempt, CampaignContact
from outbound.contacts_csv import import_file
from outbound.model import CampaignState
from outbound.store import CampaignStore
from testkit.customer import CustomerPhone, machine_pcap, person_pcap
from testkit.isolated import isolated_config
from tests.e2e.serve_proc import ServeProcess

PEOPLE = ["Hello?", "Hi.", "Yes?", "Hello, this is Tom.", "Miller residence.", "Hello, who is this?",
          "Good evening, Sarah speaking.", "Yeah?"]
MACHINES = [
    "Hi, you have reached Tom. Leave a message.",
    "You have reached the voicemail of Sarah Miller. Please leave a message after the tone.",
    "The person you are calling is not available. Please record your message after the tone.",
    "Hi, this is Dan. I can't come to the phone right now, leave your name and number and I "
    "will call you back as soon as I can. Thanks.",
    "Hello.  ...  We are not at home.",
    "Thank you for calling. Nobody is available. Please leave a message.",
]


async def run(work: Path) -> dict:
    config = isolated_config(work / "state")
    demo.seed(config)
    customers, expected = [], {}
    for i, text in enumerate(PEOPLE):
        audio = person_pcap(work / f"p{i}.pcap", hello=text, total=25.0)
        customers.append(await CustomerPhone(f"+1212555{6000 + i}", f"127.0.6.{i + 1}",
                                             audio=audio).start())
        expected[customers[-1].number] = ("person", text)
    for i, text in enumerate(MACHINES):
        audio, _ = machine_pcap(work / f"m{i}.pcap", text, total=40.0)
        customers.append(await CustomerPhone(f"+1212555{7000 + i}", f"127.0.7.{i + 1}",
                                             audio=audio).start())
        expected[customers[-1].number] = ("machine", text)
    config.outbound = OutboundConfig(routes={c.number: c.route for c in customers}, poll_seconds=0.5)
    runner.up(config)
    serve = ServeProcess(config).start()
    engine = db.make_engine(config.db_url)
    try:
        await serve.wait_ready()
        await serve.wait_speech_loaded(timeout=120)   # the models load after ready (D40)
        store = CampaignStore(db.make_sessionmaker(engine))
        now = datetime.now(timezone.utc)
        store.create("amd", "Hello {name}, your order ships today.", now, max_concurrent=14,
                     voicemail_template="Hello {name}, your order ships today.", ring_seconds=15,
                     replies={}, window_start="00:00", window_end="23:59")
        csv = work / "c.csv"
        csv.write_text("phone,name,timezone\n" + "".join(f"{c.number},N,America/New_York\n" for c in customers))
        import_file(engine, "amd", csv, now)
        store.set_state("amd", CampaignState.RUNNING)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            rows = _results(engine)
            if len(rows) == len(customers) and all(r[2] for r in rows):
                break
            await asyncio.sleep(1)
    finally:
        serve.stop()
        for c in customers:
            await c.stop()
        runner.down(config)
    return _summary(_results(engine), expected, _causes(serve.log_path.read_text()))


def _causes(log: str) -> dict[str, str]:
    """phone -> AMDCAUSE, from serve's transition lines ("amd -> talking (AMD MACHINE MAXWORDS-3-2)")."""
    found = re.findall(r"outbound cp-out-\d+ \((\+\d+), .*?AMD \S+ (\S+)\)", log)
    return dict(found)


def _results(engine) -> list[tuple[str, str, str, str]]:
    with db.make_sessionmaker(engine)() as s:
        return list(s.execute(select(CampaignContact.phone, CampaignAttempt.amd_status,
                                     CampaignAttempt.outcome, CampaignAttempt.detail)
                              .join(CampaignAttempt, CampaignAttempt.contact_id == CampaignContact.id)))


def _summary(rows, expected, causes) -> dict:
    table, confusion = [], {}
    for phone, amd, outcome, detail in rows:
        kind, text = expected[phone]
        table.append({"callee": kind, "audio": text, "amd": amd, "cause": causes.get(phone, ""),
                      "outcome": outcome})
        key = f"{kind} -> {'MACHINE' if amd == 'MACHINE' else amd or '?'}"
        confusion[key] = confusion.get(key, 0) + 1
    right = sum(1 for r in table if (r["amd"] == "MACHINE") == (r["callee"] == "machine"))
    return {"calls": len(table), "right": right, "confusion": confusion, "calls_detail": table}


if __name__ == "__main__":
    work = Path(tempfile.mkdtemp(prefix="callpilot-amd-bench-"))
    print(json.dumps(asyncio.run(run(work)), indent=2, ensure_ascii=False))
    sys.exit(0)
