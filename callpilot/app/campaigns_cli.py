"""``callpilot campaigns create|import|start|pause|resume|report|dnc``."""
from __future__ import annotations

import argparse
import json
import sys

from callpilot.infra.config import Config
from callpilot.infra.db import session as db
from callpilot.infra.db.campaigns import GLOBAL_DNC
from callpilot.infra.db.records import utcnow
from outbound import report as campaign_report
from outbound.contacts_csv import import_file
from outbound.model import CampaignMode, CampaignState
from outbound.settings import campaign_settings, check_name
from outbound.store import CampaignError, CampaignStore

STATE_OF = {"start": CampaignState.RUNNING, "resume": CampaignState.RUNNING,
            "pause": CampaignState.PAUSED, "finish": CampaignState.DONE}


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True)
    c = sub.add_parser("create", help="create a campaign (state draft)")
    c.add_argument("name")
    c.add_argument("--template", required=True, help='message, e.g. "Hello {name}, order {order_id} ..."')
    c.add_argument("--purpose", default="")
    c.add_argument("--mode", choices=[m.value for m in CampaignMode], default="notification")
    c.add_argument("--caller-id", default="")
    c.add_argument("--callback-number", default="")
    c.add_argument("--queue", default="general", help="ACD queue for 'talk to an agent'")
    c.add_argument("--language", default="en")
    c.add_argument("--say", action="append", default=[],
                   help="spoken reply PHRASE=confirm|agent|repeat|opt_out (repeat; needs speech_model)")
    c.add_argument("--window", default="08:00-21:00", help="contact's local time, HH:MM-HH:MM")
    c.add_argument("--exclude", action="append", default=[], help="excluded date YYYY-MM-DD (repeat)")
    c.add_argument("--calendar", help="a calendar (callpilot calendars import): its closed days too")
    c.add_argument("--max-attempts", type=int, default=3)
    c.add_argument("--retry", action="append", default=[], help="OUTCOME=SECONDS, e.g. no_answer=3600")
    c.add_argument("--max-concurrent", type=int, default=5)
    c.add_argument("--no-amd", action="store_true")
    c.add_argument("--voicemail", default="", help="message left on answering machines")
    c.add_argument("--abandon-cap", type=float, default=3.0, help="percent of live answers, 30 days")
    c.add_argument("--max-dial-level", type=float, default=1.0, help="progressive: lines per free agent")
    c.add_argument("--ring-seconds", type=int, default=25)
    i = sub.add_parser("import", help="import contacts from a CSV file (one transaction)")
    i.add_argument("name")
    i.add_argument("csv")
    i.add_argument("--region", default="US", help="region of numbers without +country code")
    for action in ("start", "pause", "resume", "finish"):
        sub.add_parser(action).add_argument("name")
    r = sub.add_parser("report", help="outcomes per contact, totals per campaign")
    r.add_argument("name")
    d = sub.add_parser("dnc", help="add a number to the global (or --campaign) DNC list")
    d.add_argument("phone")
    d.add_argument("--campaign", default=GLOBAL_DNC)
    for parser in (c, i, r, d, *[sub.choices[a] for a in STATE_OF]):
        parser.add_argument("--json", action="store_true")


def _settings(args) -> dict:
    """The flags through the same checks as the admin web's form (outbound.settings)."""
    start, _, end = args.window.partition("-")
    return campaign_settings(template=args.template, purpose=args.purpose, mode=args.mode,
                             caller_id=args.caller_id, callback_number=args.callback_number, queue=args.queue,
                             language=args.language, window_start=start, window_end=end,
                             excluded=args.exclude, calendar=args.calendar, max_attempts=args.max_attempts,
                             retry=args.retry, max_concurrent=args.max_concurrent, amd=not args.no_amd,
                             voicemail=args.voicemail, abandon_cap=args.abandon_cap,
                             max_dial_level=args.max_dial_level, ring_seconds=args.ring_seconds, say=args.say)


def _do(store: CampaignStore, engine, args) -> dict:
    now = utcnow()
    if args.action == "create":
        check_name(args.name)
        return {"created": args.name, "id": store.create(args.name, args.template, now, **_settings(args))}
    if args.action == "import":
        return import_file(engine, args.name, args.csv, now, args.region).as_dict()
    if args.action == "report":
        return campaign_report.build(store, args.name, now)
    if args.action == "dnc":
        store.add_dnc(args.phone, args.campaign, "cli", now)
        return {"dnc": args.phone, "scope": args.campaign}
    store.set_state(args.name, STATE_OF[args.action])
    return {"campaign": args.name, "state": STATE_OF[args.action].value}


def run(config: Config, args) -> int:
    engine = db.make_engine(config.db_url)
    try:
        db.create_schema(engine)
        result = _do(CampaignStore(db.make_sessionmaker(engine)), engine, args)
    except (CampaignError, ValueError, OSError) as exc:
        print(f"callpilot campaigns: {exc}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    if args.json:
        print(json.dumps(result, indent=2, default=str))
    elif args.action == "report":
        print(campaign_report.format_text(result))
    elif args.action == "import":
        print(f"imported {result['imported']}, rejected {result['rejected']}")
        for e in result["errors"]:
            print(f"  line {e['line']}: {e['reason']}")
    else:
        print(" ".join(f"{k} {v}" for k, v in result.items()))
    return 1 if args.action == "import" and result["rejected"] else 0
