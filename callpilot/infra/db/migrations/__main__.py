"""``python -m callpilot.infra.db.migrations revision "what changed"`` | ``check`` | ``heads``.

``revision`` compares the models with a scratch SQLite database migrated to head and writes
the next numbered revision into ``versions/`` (no server or alembic.ini needed).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from alembic import command

from callpilot.infra.db import migrations
from callpilot.infra.db.session import make_engine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m callpilot.infra.db.migrations")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="write the next revision from the model changes")
    rev.add_argument("message")
    rev.add_argument("--empty", action="store_true", help="no autogenerate: write ops by hand")
    sub.add_parser("check", help="list differences between the models and the migrations")
    sub.add_parser("heads", help="print the head revision")
    args = parser.parse_args(argv)
    if args.cmd == "heads":
        print(migrations.head())
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'scratch.db'}")
        try:
            migrations.upgrade(engine)
            with engine.begin() as connection:
                if args.cmd == "check":
                    return _check(connection)
                return _revision(connection, args.message, autogenerate=not args.empty)
        finally:
            engine.dispose()


def _check(connection) -> int:
    diffs = migrations.differences(connection)
    for diff in diffs:
        print(diff)
    print("models and migrations agree" if not diffs else f"{len(diffs)} difference(s)")
    return 1 if diffs else 0


def _revision(connection, message: str, autogenerate: bool) -> int:
    config = migrations.alembic_config(connection, target_metadata=migrations.target_metadata())
    numbers = [int(r.revision) for r in migrations.script().walk_revisions() if r.revision.isdigit()]
    script = command.revision(config, message, autogenerate=autogenerate,
                              rev_id=f"{max(numbers, default=0) + 1:04d}")
    print(f"wrote {script.path}: review it, then run the unit tests (tests/unit/test_db_schema.py)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
