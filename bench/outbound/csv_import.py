"""Time and peak memory of a contact import: ``python -m bench.outbound.csv_import [rows] [db url]``.

Writes a CSV of ``rows`` contacts (1 in 100 bad: a short number, an unknown zone, a missing
variable, a duplicate), imports it into a fresh campaign in one transaction and prints wall
time, rows/s and the process's peak RSS (``ru_maxrss``), before and after the import.
"""
from __future__ import annotations

import csv
import json
import resource
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from outbound.contacts_csv import import_file
from outbound.store import CampaignStore

ZONES = ("America/New_York", "America/Chicago", "America/Denver", "America/Los_Angeles", "")


def write_csv(path: Path, rows: int) -> int:
    """Returns how many rows are bad by construction."""
    bad = 0
    with open(path, "w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["phone", "name", "timezone", "language", "order_id", "amount"])
        for i in range(rows):
            zone, order = ZONES[i % 5], f"A{i}"
            phone = f"+1212{2000000 + i}"
            if i % 100 == 17:
                phone, bad = "12345", bad + 1
            elif i % 100 == 42:
                zone, bad = "Mars/Olympus", bad + 1
            elif i % 100 == 66:
                order, bad = "", bad + 1
            elif i % 100 == 91:
                phone, bad = f"+1212{2000000 + i - 1}", bad + 1
            out.writerow([phone, f"Customer {i}", zone, "en", order, f"{i % 500}.00"])
    return bad


def main(rows: int = 100_000, url: str = "") -> dict:
    work = Path(tempfile.mkdtemp(prefix="callpilot-csv-bench-"))
    path = work / "contacts.csv"
    expected_bad = write_csv(path, rows)
    engine = make_engine(url or f"sqlite:///{work / 'bench.db'}")
    create_schema(engine)
    now = datetime.now(timezone.utc)
    CampaignStore(make_sessionmaker(engine)).create("bench", "Hi {name}, order {order_id}: {amount}", now)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    report = import_file(engine, "bench", path, now)
    seconds = time.perf_counter() - started
    result = {"rows": rows, "file_mb": round(path.stat().st_size / 1e6, 1),
              "imported": report.imported, "rejected": len(report.errors),
              "expected_bad": expected_bad, "seconds": round(seconds, 2),
              "rows_per_s": round(rows / seconds),
              "peak_rss_mb_before": round(rss_before / 1024, 1),
              "peak_rss_mb_after": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
              "database": engine.dialect.name}
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000, sys.argv[2] if len(sys.argv) > 2 else "")
