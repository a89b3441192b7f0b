"""``callpilot calendars``: import, list and show named business calendars.

    callpilot calendars import bank holidays.ics --timezone Asia/Seoul   # all-day events = closed
    callpilot calendars import bank hours.csv      # 2026-12-25,Christmas  /  mon,09:00,18:00
    callpilot calendars list [--json]
    callpilot calendars show bank [--json]

An import replaces the calendar's closed days and hours.  ``branch`` nodes use calendars by
name (``{"holiday": "bank"}``, ``{"open": "bank"}``) and a queue with ``calendar`` set sends
calls that arrive while it is closed to its closed queue or closed message.  A running
``serve`` sees an import within 10 s.  Exit codes: 0 ok, 1 bad file, 2 usage/not found.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from callpilot.infra.calendar import Calendar, CalendarFileError, describe, read_calendar
from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from callpilot.infra.db.calendars import CalendarStore

logger = logging.getLogger(__name__)

EXIT_BAD_FILE = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="calendars_action", required=True)
    i = actions.add_parser("import", help="create or replace a calendar from .ics or .csv")
    i.add_argument("name")
    i.add_argument("file")
    i.add_argument("--timezone", default="UTC", help="zone its dates and hours are in")
    ls = actions.add_parser("list", help="stored calendars")
    ls.add_argument("--json", action="store_true")
    sh = actions.add_parser("show", help="one calendar's closed days and hours")
    sh.add_argument("name")
    sh.add_argument("--json", action="store_true")


def read_file(name: str, path: Path, zone: str) -> Calendar:
    """A calendar from an iCalendar (.ics) or CSV file (by its content, not its name)."""
    return read_calendar(name, path.read_bytes(), zone)


def run(config: Config, args: argparse.Namespace) -> int:
    engine = db.make_engine(config.db_url)
    try:
        db.create_schema(engine)
        store = CalendarStore(db.make_sessionmaker(engine))
        return _ACTIONS[args.calendars_action](store, args)
    finally:
        engine.dispose()


def _import(store: CalendarStore, args: argparse.Namespace) -> int:
    try:
        ZoneInfo(args.timezone)
        calendar = read_file(args.name, Path(args.file), args.timezone)
    except ZoneInfoNotFoundError:
        print(f"callpilot: unknown time zone {args.timezone!r}", file=sys.stderr)
        return EXIT_USAGE
    except (CalendarFileError, UnicodeDecodeError) as exc:
        print(f"callpilot: {args.file}: {exc}", file=sys.stderr)
        return EXIT_BAD_FILE
    except OSError as exc:
        print(f"callpilot: cannot read {args.file}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    store.save(calendar, source=str(args.file), now=datetime.now(timezone.utc))
    print(f"calendar {args.name}: {len(calendar.closed)} closed day(s), "
          f"{len(calendar.hours)} opening window(s), time zone {args.timezone}")
    return 0


def _list(store: CalendarStore, args: argparse.Namespace) -> int:
    calendars = store.all()
    if args.json:
        print(json.dumps([describe(c) for _, c in sorted(calendars.items())], indent=2))
        return 0
    for name, c in sorted(calendars.items()):
        print(f"{name}  {c.timezone}  {len(c.closed)} closed day(s), {len(c.hours)} window(s)")
    return 0


def _show(store: CalendarStore, args: argparse.Namespace) -> int:
    calendar = store.get(args.name)
    if calendar is None:
        print(f"callpilot: no calendar {args.name!r}", file=sys.stderr)
        return EXIT_USAGE
    info = describe(calendar)
    if args.json:
        print(json.dumps(info, indent=2))
        return 0
    print(f"calendar {calendar.name} ({calendar.timezone})")
    print("  hours: " + (", ".join(info["hours"]) or "always open (closed days only)"))
    for day, name in info["closed"].items():
        print(f"  closed {day}  {name}")
    return 0


_ACTIONS = {"import": _import, "list": _list, "show": _show}
