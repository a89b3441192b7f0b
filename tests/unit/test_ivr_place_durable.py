"""The IVR's last place is durable before the caller is handed to the ACD.

The CI failure this guards against (PostgreSQL copy of test_waiting_call_survives_serve_restart):
a caller pressed 1 during the greeting, so main_menu and to_billing ran without a loop turn;
their deferred place saves were posted after the flow's awaited journey update, joined the
ACD's write-behind QUEUED update, and a serve killed in that window left the record at
"greeting": the restarted serve replayed the greeting instead of re-enqueueing the caller.
The writer's delay here is 60 s, so only awaited writes reach the database (a kill at any
moment after the handoff)."""
from __future__ import annotations

from datetime import datetime, timezone

from ivr.flows import load_builtin
from ivr.runner import FlowRunner
from ivr.schema import parse
from ivr.stasis import PlaceRecorder, record_flow_end
from ivr.tts import PromptCache
from callpilot.infra.db.records import RecordWriter
from testkit.ivr_fakes import FakeDriver, ToneSynthesizer
from tests.unit.test_db_records import engine, store  # noqa: F401  (fixtures: both backends)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


async def run_main_menu(tmp_path, writer: RecordWriter, keys: list[str]):
    flow = parse(load_builtin("main"))
    runner = FlowRunner(PromptCache(tmp_path, "en-us", 160, synthesizer=ToneSynthesizer()))
    recorder = PlaceRecorder(writer, "c1", flow)
    result = await runner.run(flow, FakeDriver(keys), {}, on_progress=recorder)
    return recorder, result


async def test_the_last_place_is_written_with_the_awaited_end_of_the_flow(tmp_path, store):
    writer = RecordWriter(store, delay=60)
    try:
        await writer.open("c1", caller_id="15550001", did="800", flow="main", started_at=T0)
        recorder, result = await run_main_menu(tmp_path, writer, ["1"])
        await record_flow_end(writer, recorder, "c1", result)
        record = store.get("c1")        # what a serve killed now would leave
    finally:
        writer.close()
    assert result.outcome.queue == "billing"
    assert record.ivr_place["node"] == "to_billing"
    assert record.ivr_place["path"] == ["greeting", "main_menu", "to_billing"]
    assert record.menu_path == ["main_menu=1"]
    assert record.journey["path"] == ["greeting", "main_menu", "to_billing"]


async def test_saves_of_one_loop_turn_become_one_write_of_the_latest_place(tmp_path, store):
    writer = RecordWriter(store, delay=60)
    try:
        await writer.open("c1", started_at=T0)
        recorder, _result = await run_main_menu(tmp_path, writer, ["9", "1"])
        recorder.flush()
        recorder.flush()                # nothing deferred any more: writes nothing
        await writer.flush()
        record = store.get("c1")
    finally:
        writer.close()
    assert record.ivr_place["node"] == "to_billing"
    assert record.menu_path == ["main_menu=9", "main_menu=1"]
