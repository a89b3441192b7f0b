"""Records of the calls app_queue took on the degraded path, read back from its queue_log."""
from __future__ import annotations

from callpilot.infra.db.base import Base
from callpilot.infra.db.records import CallRecordStore
from callpilot.infra.db.session import make_engine, make_sessionmaker
from acd.degraded import DegradedCalls

Q = "callpilot-degraded"
LINES = [
    "1764590000|NONE|NONE|NONE|QUEUESTART|",
    f"1764590001|cp-1.1|{Q}|NONE|ENTERQUEUE|800|15550001|1",
    f"1764590002|cp-1.2|{Q}|NONE|ENTERQUEUE|803|15550002|2",
    f"1764590004|cp-1.1|{Q}|1001|CONNECT|3|cp-1.3|1",
    "1764590004|cp-9.9|bench|1002|CONNECT|3|cp-1.4|1",
    f"1764590006|cp-1.2|{Q}|NONE|ABANDON|1|2|4",
    f"1764590020|cp-1.1|{Q}|1001|COMPLETECALLER|3|16|1",
]


def store(tmp_path) -> CallRecordStore:
    engine = make_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    Base.metadata.create_all(engine)
    return CallRecordStore(make_sessionmaker(engine))


def test_finished_degraded_calls_become_ended_records_once(tmp_path) -> None:
    log, records = tmp_path / "queue_log", store(tmp_path)
    log.write_text("\n".join(LINES[:4]) + "\n")
    reader = DegradedCalls(log, records, queue=Q)
    assert reader.poll() == []                          # both still in app_queue: no record
    assert records.get("cp-1.1") is None
    with log.open("a") as fh:
        fh.write("\n".join(LINES[4:]) + "\n")
    assert sorted(reader.poll()) == ["cp-1.1", "cp-1.2"]
    answered, abandoned = records.get("cp-1.1"), records.get("cp-1.2")
    assert (answered.state, answered.outcome, answered.agent, answered.did, answered.caller_id) == \
        ("ended", "answered", "1001", "800", "15550001")
    assert answered.queue == Q and "degraded path" in answered.detail
    assert (answered.answered_at - answered.started_at).total_seconds() == 3
    assert (abandoned.outcome, abandoned.agent, abandoned.did) == ("abandoned", None, "803")
    assert records.get("cp-9.9") is None                # another queue's line is not ours
    again = DegradedCalls(log, records, queue=Q)        # serve restarted: reads it all again
    assert again.poll() == []


def test_a_half_written_line_waits_for_its_end(tmp_path) -> None:
    log, records = tmp_path / "queue_log", store(tmp_path)
    log.write_text(LINES[1] + "\n" + LINES[3] + "\n" + LINES[6][:20])
    reader = DegradedCalls(log, records, queue=Q)
    assert reader.poll() == []
    with log.open("a") as fh:
        fh.write(LINES[6][20:] + "\n")
    assert reader.poll() == ["cp-1.1"]


def test_missing_file_and_garbage_lines_are_harmless(tmp_path) -> None:
    records = store(tmp_path)
    assert DegradedCalls(tmp_path / "none", records, queue=Q).poll() == []
    log = tmp_path / "queue_log"
    log.write_text("garbage\n|||||\nx|cp|" + Q + "|NONE|ENTERQUEUE|\n" + LINES[6] + "\n")
    assert DegradedCalls(log, records, queue=Q).poll() == []
