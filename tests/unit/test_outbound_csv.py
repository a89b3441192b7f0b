"""CSV import: each bad row reported with its line number and reason, good rows kept, one
transaction (an error in the middle leaves nothing)."""
from __future__ import annotations

from datetime import datetime, timezone
from io import StringIO
from pathlib import Path

import pytest
from sqlalchemy import func, select

from callpilot.infra.db.campaigns import CampaignContact
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from outbound import contacts_csv
from outbound.contacts_csv import import_contacts, import_file, template_fields
from outbound.store import CampaignStore

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)

CSV = """phone,name,timezone,language,order_id
+1 212 555 0100,Ann,,en,A1
2125550101,Bob,America/Chicago,,A2
12345,Cid,,,A3
+12125550103,Dee,Mars/Olympus,,A4
+12125550104,"Eve
(second line)",,,
(212) 555-0100,Ann again,,,A6
+44 20 7946 0958,Fay,,en-GB,A7
+1 800 555 0199,Gus,,,A8
"""


@pytest.fixture
def engine(db_url):
    engine = make_engine(db_url)
    create_schema(engine)
    CampaignStore(make_sessionmaker(engine)).create("c", "Hi {name}, order {order_id}.", NOW)
    yield engine
    engine.dispose()


def count(engine) -> int:
    with engine.connect() as c:
        return c.scalar(select(func.count()).select_from(CampaignContact))


def test_bad_rows_reported_by_line_with_reason_good_rows_kept(engine):
    with engine.begin() as conn:
        report = import_contacts(conn, "c", StringIO(CSV), NOW)
    reasons = dict(report.errors)
    assert sorted(reasons) == [4, 5, 7, 8, 10]
    assert reasons[4].startswith("bad number '12345'")
    assert reasons[5] == "unknown timezone 'Mars/Olympus'"
    assert reasons[7] == "missing variable order_id"          # a quoted two-line field: line 6-7
    assert reasons[8] == "duplicate number +12125550100"
    assert reasons[10].startswith("unknown timezone: not derivable")   # toll-free: no single zone
    assert report.imported == 3
    with engine.connect() as c:
        rows = {r.phone: r for r in c.execute(select(CampaignContact))}
    assert rows["+12125550100"].timezone == "America/New_York"       # derived from 212
    assert rows["+12125550101"].timezone == "America/Chicago"        # given
    assert rows["+442079460958"].timezone == "Europe/London"
    assert rows["+12125550101"].variables == {"order_id": "A2"}
    assert rows["+442079460958"].language == "en-GB"


def test_a_second_import_reports_numbers_already_in_the_campaign(engine):
    with engine.begin() as conn:
        import_contacts(conn, "c", StringIO(CSV), NOW)
    with engine.begin() as conn:
        again = import_contacts(conn, "c", StringIO(CSV), NOW)
    assert again.imported == 0
    assert count(engine) == 3


def test_an_error_mid_file_leaves_nothing_imported(engine, tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    path.write_text("phone,name,order_id\n" + "".join(f"+1212{2000000 + i},N,A{i}\n" for i in range(50)))
    monkeypatch.setattr(contacts_csv, "BATCH_ROWS", 10)
    real_flush, calls = contacts_csv._flush, []

    def failing_flush(connection, batch):
        calls.append(len(batch))
        if len(calls) == 3:
            raise OSError("disk gone")
        return real_flush(connection, batch)
    monkeypatch.setattr(contacts_csv, "_flush", failing_flush)
    with pytest.raises(OSError):
        import_file(engine, "c", path, NOW)
    assert calls[:2] == [10, 10]          # two batches were written inside the transaction
    assert count(engine) == 0


def test_template_fields():
    assert template_fields("Hi {name}, {amount} due {due_date}") == {"name", "amount", "due_date"}


def test_import_killed_mid_file_leaves_nothing(tmp_path):
    """``callpilot campaigns import`` of 30,000 rows, SIGKILLed once it has read a few
    thousand: the campaign has no contact at all (the batches written were never committed)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from bench.outbound.csv_import import write_csv

    state = tmp_path / "state"
    env = {**os.environ, "CALLPILOT_STATE_DIR": str(state)}
    exe = [str(Path(sys.executable).with_name("callpilot")), "campaigns"]
    subprocess.run([*exe, "create", "big", "--template", "Hi {name}, order {order_id}: {amount}"],
                   env=env, check=True, capture_output=True, timeout=120)
    path = tmp_path / "big.csv"
    write_csv(path, 30_000)
    proc = subprocess.Popen([*exe, "import", "big", str(path)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    engine = make_engine(f"sqlite:///{state.resolve() / 'callpilot.db'}")
    wal = Path(str(state.resolve() / "callpilot.db") + "-wal")
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and (not wal.exists() or wal.stat().st_size < 400_000):
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    assert wal.stat().st_size >= 400_000          # batches written, not committed
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert count(engine) == 0
    engine.dispose()
