"""Calendars as data: iCalendar/CSV parsing, opening hours, the store on both backends, CLI."""
from __future__ import annotations

import json
from datetime import date, datetime, time, timezone
from pathlib import Path

import pytest

from callpilot.app import calendars_cli
from callpilot.app.cli import build_parser
from callpilot.infra.calendar import Calendar, CalendarFileError, Hours, parse_csv, parse_ics
from callpilot.infra.config import Config
from callpilot.infra.db.calendars import CalendarBook, CalendarStore
from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker

ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//test//EN
BEGIN:VEVENT
UID:1
DTSTART;VALUE=DATE:20261225
SUMMARY:Christmas
END:VEVENT
BEGIN:VEVENT
UID:2
DTSTART;VALUE=DATE:20270101
DTEND;VALUE=DATE:20270103
SUMMARY:New Year
END:VEVENT
BEGIN:VEVENT
UID:3
DTSTART:20261224T100000Z
DTEND:20261224T110000Z
SUMMARY:Staff meeting
END:VEVENT
END:VCALENDAR
"""

CSV = """date,name
2026-12-25,Christmas
# opening hours
weekday,open,close
mon,09:00,18:00
fri,22:00,02:00
sat,09:00,24:00
"""


def test_ics_all_day_events_are_closed_days_and_timed_events_are_skipped() -> None:
    assert parse_ics(ICS) == {date(2026, 12, 25): "Christmas", date(2027, 1, 1): "New Year",
                              date(2027, 1, 2): "New Year"}


def test_ics_garbage_is_refused() -> None:
    with pytest.raises(CalendarFileError):
        parse_ics("hello")


def test_csv_days_and_hours() -> None:
    closed, hours = parse_csv(CSV)
    assert closed == {date(2026, 12, 25): "Christmas"}
    assert hours == (Hours(0, time(9), time(18)), Hours(4, time(22), time(2)),
                     Hours(5, time(9), time(0)))


@pytest.mark.parametrize("text, line", [("2026-13-01,x", 1), ("mon,9am,18:00", 1),
                                        ("ok,fine\n", 1), ("date,name\nxmas,now", 2)])
def test_csv_errors_name_the_line(text, line) -> None:
    with pytest.raises(CalendarFileError, match=f"line {line}"):
        parse_csv(text)


@pytest.mark.parametrize("local, is_open", [
    (datetime(2026, 11, 23, 8, 59), False), (datetime(2026, 11, 23, 9, 0), True),   # Monday
    (datetime(2026, 11, 23, 17, 59), True), (datetime(2026, 11, 23, 18, 0), False),
    (datetime(2026, 11, 27, 23, 0), True), (datetime(2026, 11, 28, 1, 30), True),    # Fri night
    (datetime(2026, 11, 28, 23, 59), True),                                          # Sat to 24:00
    (datetime(2026, 11, 24, 10, 0), False),                                          # Tuesday
    (datetime(2026, 12, 25, 23, 0), False),                                          # holiday (Fri)
])
def test_opening_hours(local, is_open) -> None:
    closed, hours = parse_csv(CSV)
    assert Calendar("c", "UTC", closed, hours).is_open(local) is is_open


def test_a_calendar_without_hours_is_open_except_on_closed_days() -> None:
    cal = Calendar("h", closed={date(2026, 12, 25): "Christmas"})
    assert cal.is_open(datetime(2026, 12, 24, 3, 0)) and not cal.is_open(datetime(2026, 12, 25, 12))


def test_store_round_trip_and_replace(db_url) -> None:
    engine = make_engine(db_url)
    create_schema(engine)
    store = CalendarStore(make_sessionmaker(engine))
    closed, hours = parse_csv(CSV)
    now = datetime.now(timezone.utc)
    store.save(Calendar("bank", "Asia/Seoul", closed, hours), source="a.csv", now=now)
    store.save(Calendar("kr", "Asia/Seoul", parse_ics(ICS)), now=now)
    assert store.names() == ["bank", "kr"]
    assert store.get("bank") == Calendar("bank", "Asia/Seoul", closed, hours)
    store.save(Calendar("bank", "UTC", {date(2027, 5, 5): "Children"}), now=now)   # replaces
    assert store.get("bank") == Calendar("bank", "UTC", {date(2027, 5, 5): "Children"})
    assert store.get("kr").closed[date(2027, 1, 2)] == "New Year"
    engine.dispose()


def test_book_rereads_after_its_refresh_period(sessions) -> None:
    store, clock = CalendarStore(sessions), [0.0]
    book = CalendarBook(store, refresh=10, monotonic=lambda: clock[0])
    assert book.get("bank") is None
    store.save(Calendar("bank"), now=datetime.now(timezone.utc))
    clock[0] = 9.9
    assert book.get("bank") is None          # cached
    clock[0] = 10.0
    assert book.get("bank") == Calendar("bank")


def run_cli(tmp_path: Path, *argv: str) -> int:
    config = Config(state_dir=tmp_path, database_url=f"sqlite:///{tmp_path / 'cal.db'}")
    args = build_parser().parse_args(["calendars", *argv])
    return calendars_cli.run(config, args)


def test_cli_import_list_show(tmp_path, capsys) -> None:
    (tmp_path / "kr.ics").write_text(ICS)
    (tmp_path / "hours.csv").write_text(CSV)
    assert run_cli(tmp_path, "import", "kr", str(tmp_path / "kr.ics"), "--timezone", "Asia/Seoul") == 0
    assert run_cli(tmp_path, "import", "bank", str(tmp_path / "hours.csv")) == 0
    assert "3 closed day(s), 0 opening window(s)" in capsys.readouterr().out.splitlines()[0]
    assert run_cli(tmp_path, "list") == 0
    assert capsys.readouterr().out.splitlines() == [
        "bank  UTC  1 closed day(s), 3 window(s)", "kr  Asia/Seoul  3 closed day(s), 0 window(s)"]
    assert run_cli(tmp_path, "show", "bank", "--json") == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["hours"] == ["mon 09:00-18:00", "fri 22:00-02:00", "sat 09:00-00:00"]
    assert shown["closed"] == {"2026-12-25": "Christmas"}


def test_cli_errors(tmp_path, capsys) -> None:
    (tmp_path / "bad.csv").write_text("tomorrow,party\n")
    assert run_cli(tmp_path, "import", "x", str(tmp_path / "bad.csv")) == 1
    assert "line 1" in capsys.readouterr().err
    assert run_cli(tmp_path, "import", "x", str(tmp_path / "missing.csv")) == 2
    assert run_cli(tmp_path, "import", "x", str(tmp_path / "bad.csv"), "--timezone", "Mars/Base") == 2
    assert run_cli(tmp_path, "show", "nothing") == 2

