"""``callpilot`` command line: serve | web | asterisk up/down/status/render | status | call | demo |
flows | calendars | agents | queues."""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import urllib.parse

from callpilot.infra import config as config_mod
from callpilot.infra.config import Config, ConfigError

logger = logging.getLogger(__name__)


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # The format shows no source line, thread or process: skip collecting them for every
    # record (the logging HOWTO's "Optimization"; findCaller walks the stack each time).
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False


def cmd_serve(config: Config, _args) -> int:
    from callpilot.infra.pidlock import AlreadyRunning, PidLock
    try:
        lock = PidLock(config.state_dir / "serve.pid").acquire()
    except AlreadyRunning as exc:
        print(f"callpilot: serve is already running for state dir {config.state_dir} "
              f"(pid {exc.pid or '?'}); not starting a second one", file=sys.stderr)
        return 1
    with lock:
        from callpilot.app.server import serve
        asyncio.run(serve(config))
    return 0


def cmd_web(config: Config, _args) -> int:
    from callpilot.app.web import run
    run(config)
    return 0


def cmd_users(config: Config, args) -> int:
    """Admin web accounts: the first admin (password printed once), add, new password."""
    from callpilot.app import web
    if args.action == "bootstrap":
        password = web.bootstrap_admin(config)
        if password is None:
            print("web accounts exist already: no password printed "
                  "(`callpilot users password admin` sets a new one)")
        else:
            print(f"first admin: user admin, password {password} (shown once; not stored in clear)")
        return 0
    if not args.username:
        print(f"callpilot: users {args.action} needs a username", file=sys.stderr)
        return 2
    try:
        password = web.manage_user(config, args.action, args.username, args.role, args.agent)
    except ValueError as exc:
        print(f"callpilot: {exc}", file=sys.stderr)
        return 1
    print(f"user {args.username}: password {password} (shown once)")
    return 0


def cmd_asterisk(config: Config, args) -> int:
    from callpilot.infra.asterisk import runner
    if args.action == "up":
        runner.up(config)
        print(f"asterisk up: SIP {config.asterisk.sip_host}:{config.asterisk.sip_port}, "
              f"ARI {config.ari_url}, AMI 127.0.0.1:{config.asterisk.ami_port}")
    elif args.action == "down":
        runner.down(config)
        print("asterisk down")
    elif args.action == "install":
        install = runner.ensure_install(config)
        where = f"in the root filesystem {install.rootfs}" if install.rootfs else "(system)"
        print(f"asterisk: {install.binary} {where}")
    elif args.action == "render":
        runner.render(config, runner.load_agents(config))
        print(f"rendered into {config.asterisk_dir / 'etc'}")
    else:
        state = runner.status(config)
        print(state)
        return 0 if state == "up" else 3
    return 0


def collect_status(config: Config) -> dict:
    from callpilot.infra.asterisk import runner
    from callpilot.app.status import fetch
    live = asyncio.run(fetch(config.state_dir / "serve.sock"))
    result = {"asterisk": runner.status(config), "serve": "up" if live else "down",
              "ari": "disconnected", "ami": "disconnected", "calls": 0, "queues": {}}
    if live:
        result.update(live)
    return result


def cmd_status(config: Config, args) -> int:
    status = collect_status(config)
    if args.json:
        print(json.dumps(status, indent=2, sort_keys=True))
    else:
        print(f"asterisk {status['asterisk']}, serve {status['serve']}, ARI {status['ari']}, "
              f"AMI {status['ami']}, {status['calls']} call(s)")
        for name, q in sorted(status["queues"].items()):
            print(f"  queue {name}: {q['waiting']} waiting, {q['agents_available']} agent(s) available")
        for language, speech in sorted(status.get("speech", {}).items()):
            print(f"  speech {language}: {speech_line(speech)}")
    return 0


def speech_line(speech: dict) -> str:
    """'loading', 'ready (2.4 s)' or 'failed (why)': a language's model load (D40)."""
    from ivr.speech.loading import SpeechState
    state = SpeechState(speech["state"])
    if state is SpeechState.FAILED:
        return f"{state.value} ({speech.get('reason', '')})"
    return f"{state.value} ({speech['seconds']} s)" if state is SpeechState.READY else state.value


def cmd_call(config: Config, args) -> int:
    """Place a real call from the trunk side and print what happened, with its call record."""
    from datetime import datetime, timezone
    from testkit.sipua import Caller
    a = config.asterisk
    caller = Caller(args.did, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0],
                    from_number=args.from_number, dtmf=args.dtmf, dtmf_delay=args.dtmf_delay,
                    hold_seconds=args.hold)
    placed_at = datetime.now(timezone.utc).replace(microsecond=0)
    result = asyncio.run(caller.run())
    rejected = not result.answered and (result.status is None or result.status >= 300)
    report = {"sip_status": result.status, "answered": result.answered, "ended_by": result.ended_by,
              "seconds_connected": round(result.duration, 1),
              "record": None if rejected else _own_record(config, args.from_number, args.did,
                                                          placed_at)}
    print(json.dumps(report, indent=2, default=str))
    return 0 if result.answered else 1


def _own_record(config: Config, caller_id: str, did: str, placed_at, wait: float = 3.0) -> dict | None:
    """The record of the call just placed: the first one from ``caller_id`` to ``did`` that
    started after ``placed_at`` (never an earlier call's), once serve has closed it."""
    import time
    from sqlalchemy import select
    from callpilot.infra.db import session as db
    from callpilot.infra.db.models import CallRecord
    engine = db.make_engine(config.db_url)
    db.create_schema(engine)
    query = (select(CallRecord).where(CallRecord.caller_id == caller_id, CallRecord.did == did,
                                      CallRecord.started_at >= placed_at)
             .order_by(CallRecord.started_at).limit(1))
    deadline = time.monotonic() + wait
    try:
        while True:
            with db.make_sessionmaker(engine)() as s:
                row = s.scalars(query).first()
            if (row is not None and row.state == "ended") or time.monotonic() > deadline:
                break
            time.sleep(0.2)
    finally:
        engine.dispose()
    if row is None:
        return None
    keys = ("id", "did", "state", "queue", "agent", "outcome", "menu_path", "started_at",
            "enqueued_at", "answered_at", "ended_at", "detail")
    return {k: getattr(row, k) for k in keys}


def cmd_agents(config: Config, args) -> int:
    """Agent login/logout/pause/unpause through serve, and the live agent list."""
    from callpilot.app.status import fetch, post
    sock = config.state_dir / "serve.sock"
    if args.action == "list":
        live = asyncio.run(fetch(sock))
        if live is None:
            print("callpilot: serve is not running", file=sys.stderr)
            return 3
        agents = live.get("agents", {})
        if args.json:
            print(json.dumps(agents, indent=2, sort_keys=True))
        else:
            for ext, a in sorted(agents.items()):
                print(f"{ext}  {a['state']:<10} device {a['device']:<12} {a['pause_reason']}")
        return 0
    if not args.extension:
        print(f"callpilot: agents {args.action} needs an extension", file=sys.stderr)
        return 2
    params = {"reason": args.reason} if args.reason else None
    ext = urllib.parse.quote(args.extension, safe="")
    try:
        code, body = asyncio.run(post(sock, f"/agents/{ext}/{args.action}", params))
    except OSError:
        print("callpilot: serve is not running", file=sys.stderr)
        return 3
    print(json.dumps(body) if args.json else body.get("error") or
          f"agent {body['agent']}: {body['state']} {body['pause_reason']}".strip())
    return 0 if code == 200 else 1


def cmd_queues(config: Config, args) -> int:
    """Queue statistics from the stored queue events, with live agent states when serve runs;
    ``set``: a queue's opening-hours calendar, closed handling and survey flow."""
    if args.action == "set":
        return _queue_set(config, args)
    from acd import queue_report as qr
    from acd.nps import load_nps
    from callpilot.infra.db import session as db
    from callpilot.app.status import fetch
    try:
        since = qr.parse_since(args.since) if args.since else None
    except ValueError:
        print(f"callpilot: --since {args.since!r} is not an ISO 8601 date/time", file=sys.stderr)
        return 2
    engine = db.make_engine(config.db_url)
    try:
        db.create_schema(engine)
        sessions = db.make_sessionmaker(engine)
        stats = qr.queue_stats(sessions, args.queue, since, args.target)
        members = qr.queue_members(sessions)
        nps = load_nps(sessions, args.queue, since)
    finally:
        engine.dispose()
    live = asyncio.run(fetch(config.state_dir / "serve.sock"))
    report = qr.build_report(stats, live, members, queue=args.queue, since=since,
                             target_seconds=args.target, nps=nps)
    print(json.dumps(report, indent=2, sort_keys=True) if args.json else qr.format_report(report))
    return 0


def _queue_set(config: Config, args) -> int:
    from acd.roster_store import EDGE_SETTINGS, update_queue
    from callpilot.infra.db import session as db
    changes = {k: getattr(args, k) for k in EDGE_SETTINGS if getattr(args, k) is not None}
    if not args.queue or not changes:
        print("callpilot: queues set needs --queue and at least one setting", file=sys.stderr)
        return 2
    engine = db.make_engine(config.db_url)
    try:
        db.create_schema(engine)
        settings = update_queue(db.make_sessionmaker(engine), args.queue, **changes)
    except KeyError:
        print(f"callpilot: no queue {args.queue!r}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    print(json.dumps({k: getattr(settings, k) for k in EDGE_SETTINGS}) if args.json else
          f"queue {args.queue}: " + ", ".join(f"{k}={getattr(settings, k)!r}" for k in EDGE_SETTINGS)
          + " (serve applies it at its next start)")
    return 0


def cmd_flows(config: Config, args) -> int:
    from callpilot.app import flows_cli
    return flows_cli.run(config, args)


def cmd_callbacks(config: Config, args) -> int:
    from callpilot.app import callbacks_cli
    return callbacks_cli.run(config, args)


def cmd_campaigns(config: Config, args) -> int:
    from callpilot.app import campaigns_cli
    return campaigns_cli.run(config, args)


def cmd_calendars(config: Config, args) -> int:
    from callpilot.app import calendars_cli
    return calendars_cli.run(config, args)


def cmd_demo(config: Config, _args) -> int:
    from callpilot.app import demo
    passwords = demo.seed(config)
    a = config.asterisk
    print(f"Demo agents (register on {a.sip_host}:{a.sip_port} UDP, loopback only):")
    for ext, password in sorted(passwords.items()):
        print(f"  {ext}  password {password}")
    return 0


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (and exit 2), like every other CLI error."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _dtmf(value: str) -> str:
    if not all(c in "0123456789*#" for c in value):
        raise argparse.ArgumentTypeError(f"{value!r}: keys 0-9, * and # only")
    return value


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="callpilot", description=__doc__)
    p.add_argument("--config", help="TOML config file (or CALLPILOT_CONFIG)")
    p.add_argument("-v", "--verbose", action="store_true")
    p.add_argument("--debug", action="store_true", help="on an error, show the traceback too")
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser("serve", help="run the call server (ARI, AMI, FastAGI, ACD)").set_defaults(fn=cmd_serve)
    sub.add_parser("web", help="run the admin web UI").set_defaults(fn=cmd_web)
    us = sub.add_parser("users", help="admin web accounts: bootstrap the first admin, add, password")
    us.add_argument("action", choices=["bootstrap", "add", "password"])
    us.add_argument("username", nargs="?")
    us.add_argument("--role", default="agent", choices=["admin", "supervisor", "agent"])
    us.add_argument("--agent", help="agent extension of this login (role agent)")
    us.set_defaults(fn=cmd_users)
    ast = sub.add_parser("asterisk", help="install, configure and run Asterisk")
    ast.add_argument("action", choices=["install", "up", "down", "status", "render"])
    ast.set_defaults(fn=cmd_asterisk)
    st = sub.add_parser("status", help="health of Asterisk, ARI, AMI and queues")
    st.add_argument("--json", action="store_true")
    st.set_defaults(fn=cmd_status)
    call = sub.add_parser("call", help="place a real test call through the trunk (sipp)")
    call.add_argument("did")
    call.add_argument("--dtmf", default="", type=_dtmf, help="digits to press after answer, e.g. 1")
    call.add_argument("--dtmf-delay", type=float, default=1.0, help="seconds after answer")
    call.add_argument("--from-number", default="15550001")
    call.add_argument("--hold", type=float, default=15.0, help="seconds to stay on the line")
    call.set_defaults(fn=cmd_call)
    sub.add_parser("demo", help="load demo queues, agents and customers").set_defaults(fn=cmd_demo)
    from callpilot.app import flows_cli
    fl = sub.add_parser("flows", help="IVR flows: validate, import, publish, rollback, export, list")
    flows_cli.add_arguments(fl)
    fl.set_defaults(fn=cmd_flows)
    from callpilot.app import calendars_cli
    cal = sub.add_parser("calendars", help="business calendars: import (.ics/.csv), list, show")
    calendars_cli.add_arguments(cal)
    cal.set_defaults(fn=cmd_calendars)
    ag = sub.add_parser("agents", help="log agents in/out, pause them, list them")
    ag.add_argument("action", choices=["login", "logout", "pause", "unpause", "list"])
    ag.add_argument("extension", nargs="?")
    ag.add_argument("--reason", default="", help="pause reason")
    ag.add_argument("--json", action="store_true")
    ag.set_defaults(fn=cmd_agents)
    qs = sub.add_parser("queues", help="queue statistics (offered, SL, ASA, AHT, abandons, survey NPS)")
    qs.add_argument("action", choices=["stats", "set"])
    qs.add_argument("--queue", help="only this queue (set: the queue to change)")
    qs.add_argument("--calendar", help="set: opening hours calendar ('' = always open)")
    qs.add_argument("--closed-queue", dest="closed_queue", help="set: queue for calls while closed")
    qs.add_argument("--closed-message", dest="closed_message", help="set: said before hanging up while closed")
    qs.add_argument("--survey-flow", dest="survey_flow", help="set: flow for the caller when the agent hangs up first ('' = none)")
    qs.add_argument("--since", help="ISO 8601 start, e.g. 2026-11-24T08:00 (local time without offset)")
    qs.add_argument("--target", type=float, default=20.0, help="service level target, seconds")
    qs.add_argument("--json", action="store_true")
    qs.set_defaults(fn=cmd_queues)
    from callpilot.app import callbacks_cli
    cb = sub.add_parser("callbacks", help="callbacks: list, cancel; API tokens of the call-me endpoint")
    callbacks_cli.add_arguments(cb)
    cb.set_defaults(fn=cmd_callbacks)
    from callpilot.app import campaigns_cli
    cp = sub.add_parser("campaigns", help="outbound campaigns: create, import, start, pause, resume, report")
    campaigns_cli.add_arguments(cp)
    cp.set_defaults(fn=cmd_campaigns)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _setup_logging(args.verbose or args.debug)
    try:
        config = config_mod.load(args.config)
    except ConfigError as exc:
        if args.debug:
            raise
        print(f"callpilot: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return args.fn(config, args)
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # noqa: BLE001  (the CLI's last word: one line, never a traceback)
        if args.debug:
            raise
        print(f"callpilot {args.command}: {error_line(exc)}", file=sys.stderr)
        return 1


def error_line(exc: BaseException) -> str:
    """One line saying what failed: the exception's first line, its kind when it says little."""
    text = next((line.strip() for line in str(exc).splitlines() if line.strip()), "failed")
    more = " (--debug shows the details)" if "\n" in str(exc).strip() else ""
    return f"{exc.__class__.__name__}: {text}{more}"


if __name__ == "__main__":
    sys.exit(main())
