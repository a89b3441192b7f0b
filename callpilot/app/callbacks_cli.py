"""``callpilot callbacks``: list and cancel callbacks; API tokens of the "call me" endpoint.

    callpilot callbacks list [--all] [--queue cards] [--json]   # open ones by default
    callpilot callbacks cancel <id> [--reason "customer asked"]
    callpilot callbacks token create website                    # prints the token once
    callpilot callbacks token revoke website

Works on the database, with or without ``serve`` running: ``serve`` claims a callback in a
transaction conditional on it being pending, so a cancelled one is never dialled.  A callback
being dialled right now cannot be cancelled here (exit 1); the customer can press the cancel
key on that call.  Exit codes: 0 ok, 1 refused, 2 usage or not found.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager
from datetime import datetime, timezone
from typing import Iterator

from callpilot.infra.config import Config
from callpilot.infra.db.api_tokens import ApiTokens, TokenExists
from callpilot.infra.db.callback_store import CallbackStore
from callpilot.infra.db.callbacks import OPEN_STATES, Callback, CallbackState

FIELDS = ("id", "state", "queue", "number", "name", "source", "entered_at", "attempts", "not_before",
          "expires_at", "reason", "context", "closed_at", "detail")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="callbacks_action", required=True)
    ls = actions.add_parser("list", help="callbacks in line order (open ones unless --all)")
    ls.add_argument("--all", action="store_true", help="closed ones too")
    ls.add_argument("--queue")
    ls.add_argument("--json", action="store_true")
    cancel = actions.add_parser("cancel", help="cancel a pending callback")
    cancel.add_argument("id")
    cancel.add_argument("--reason", default="cancelled by an operator")
    cancel.add_argument("--json", action="store_true")
    token = actions.add_parser("token", help="API tokens of the web/app call-me endpoint")
    token.add_argument("token_action", choices=["create", "revoke"])
    token.add_argument("name")


def run(config: Config, args: argparse.Namespace) -> int:
    if not getattr(args, "verbose", False):
        logging.getLogger().setLevel(logging.WARNING)
    with _sessions(config) as sessions:
        if args.callbacks_action == "list":
            return _list(CallbackStore(sessions, "cli"), args)
        if args.callbacks_action == "cancel":
            return _cancel(CallbackStore(sessions, "cli"), args)
        return _token(ApiTokens(sessions), args)


@contextmanager
def _sessions(config: Config) -> Iterator:
    from callpilot.infra.db import session as db
    engine = db.make_engine(config.db_url)
    try:
        db.create_schema(engine)
        yield db.make_sessionmaker(engine)
    finally:
        engine.dispose()


def as_dict(callback: Callback) -> dict:
    values = {key: getattr(callback, key) for key in FIELDS}
    return {key: value.isoformat() if isinstance(value, datetime) else value for key, value in values.items()}


def _list(store: CallbackStore, args) -> int:
    rows = store.in_states(None if args.all else OPEN_STATES)
    rows = [row for row in rows if args.queue in (None, row.queue)]
    if args.json:
        print(json.dumps([as_dict(row) for row in rows], indent=2))
        return 0
    for row in rows:
        print(f"{row.id}  {row.state:<9} {row.queue:<12} {row.number:<16} entered "
              f"{row.entered_at:%Y-%m-%d %H:%M:%S}Z  attempts {row.attempts}  {row.source}  {row.reason}")
    if not rows:
        print("no callbacks")
    return 0


def _cancel(store: CallbackStore, args) -> int:
    row = store.get(args.id)
    if row is None:
        print(f"callpilot: no callback {args.id}", file=sys.stderr)
        return 2
    done = store.close(row.id, CallbackState.CANCELLED, datetime.now(timezone.utc), args.reason)
    row = store.get(row.id)
    if args.json:
        print(json.dumps({"cancelled": done, **as_dict(row)}, indent=2))
    elif done:
        print(f"callback {row.id} cancelled")
    else:
        print(f"callpilot: callback {row.id} is {row.state}: not cancelled", file=sys.stderr)
    return 0 if done else 1


def _token(tokens: ApiTokens, args) -> int:
    now = datetime.now(timezone.utc)
    if args.token_action == "revoke":
        if tokens.revoke(args.name, now):
            print(f"token {args.name} revoked")
            return 0
        print(f"callpilot: no active token {args.name}", file=sys.stderr)
        return 2
    try:
        print(tokens.create(args.name, now))
    except TokenExists as exc:
        print(f"callpilot: {exc}", file=sys.stderr)
        return 1
    return 0
