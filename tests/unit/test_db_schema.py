"""Schema on start: migrations to head on both backends, and models that match the migrations."""
from __future__ import annotations

import functools
import re
from pathlib import Path

import pytest
from alembic import command
from alembic.migration import MigrationContext
from alembic.operations import Operations
from sqlalchemy import String, inspect, text

from callpilot.infra.db import migrations
from callpilot.infra.db.session import create_schema, make_engine, normalize_url
from tests.together import run_at_once

ROOT = Path(__file__).resolve().parents[2]
MODEL_PACKAGES = ("callpilot", "ivr", "acd", "admin_web")
HOW_TO_REVISE = ("the models and the migrations differ; write a revision with\n"
                 "    .venv/bin/python -m callpilot.infra.db.migrations revision \"what changed\"\n"
                 "review the file it writes in callpilot/infra/db/migrations/versions/ and commit it "
                 "with the model change.  Differences:\n")


@pytest.fixture
def engine(db_url: str):
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def test_create_schema_builds_every_table_on_an_empty_database(engine) -> None:
    assert tables(engine) == set()
    create_schema(engine)
    expected = set(migrations.target_metadata().tables) | {"alembic_version"}
    assert tables(engine) == expected
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()


def test_create_schema_twice_is_harmless(engine) -> None:
    create_schema(engine)
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO queues (name, title, moh_class) VALUES ('q', 'Q', 'default')"))
    create_schema(engine)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT title FROM queues")).scalars().all() == ["Q"]


def test_models_match_migrations(engine) -> None:
    create_schema(engine)
    with engine.connect() as conn:
        diffs = migrations.differences(conn)
    assert not diffs, HOW_TO_REVISE + "\n".join(f"    {d}" for d in diffs)


def test_migrations_have_one_numbered_head() -> None:
    revisions = list(migrations.script().walk_revisions())
    assert migrations.head() == revisions[0].revision
    for rev in revisions:
        assert re.fullmatch(r"\d{4}", rev.revision), f"revision id {rev.revision!r} is not 4 digits"
        assert Path(rev.path).name.startswith(f"{rev.revision}_")


def test_every_module_with_tables_is_listed() -> None:
    """A module declaring tables on Base must be in MODEL_MODULES, or the check above misses it."""
    declaring = set()
    for package in MODEL_PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            source = path.read_text(errors="replace")
            if "callpilot.infra.db.base import Base" in source and re.search(r"^class \w+\(Base\)", source, re.M):
                declaring.add(".".join(path.relative_to(ROOT).with_suffix("").parts))
    missing = declaring - set(migrations.MODEL_MODULES)
    assert not missing, f"add {sorted(missing)} to MODEL_MODULES in callpilot/infra/db/migrations/__init__.py"


def test_a_database_made_by_create_all_is_adopted(engine) -> None:
    """Databases created by create_all before migrations existed (the tables of revision 0001,
    no alembic_version table) keep their data and are migrated to head."""
    with engine.begin() as conn:
        command.upgrade(migrations.alembic_config(conn), "0001")
        conn.execute(text("DROP TABLE alembic_version"))
    with engine.begin() as conn:
        conn.execute(text("INSERT INTO customers (phone, name, segment, language) "
                          "VALUES ('1555', 'Ann', 'gold', 'en')"))
    create_schema(engine)
    with engine.connect() as conn:
        assert migrations.current(conn) == migrations.head()
        assert conn.execute(text("SELECT name FROM customers")).scalars().all() == ["Ann"]


def test_an_unversioned_database_that_differs_from_0001_is_refused_clearly(engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE agent_skills (agent_extension VARCHAR(32), skill VARCHAR(64))"))
    with pytest.raises(migrations.SchemaError, match="no migration history"):
        create_schema(engine)


def test_processes_starting_together_migrate_once(db_url: str) -> None:
    engines = [make_engine(db_url) for _ in range(3)]
    try:
        _results, errors = run_at_once([functools.partial(create_schema, e) for e in engines])
        assert errors == []
        with engines[0].connect() as conn:
            assert migrations.current(conn) == migrations.head()
    finally:
        for e in engines:
            e.dispose()


def test_sqlite_table_copy_in_a_migration_keeps_rows_that_point_at_it(tmp_path) -> None:
    """Batch mode copies a table and drops the old one; with foreign keys on, SQLite would
    cascade that drop into queue_members.  migrating() turns them off meanwhile."""
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        create_schema(engine)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO agents (extension, name, sip_md5_cred, auto_login) "
                              "VALUES ('1001', 'Mina', 'x', 1)"))
            conn.execute(text("INSERT INTO queues (name, title, moh_class) VALUES ('q', '', 'default')"))
            conn.execute(text("INSERT INTO queue_members VALUES ('q', '1001')"))
        with migrations.migrating(engine) as conn:
            with Operations(MigrationContext.configure(conn)).batch_alter_table(
                    "agents", recreate="always") as batch:
                batch.alter_column("name", type_=String(300))
        with engine.connect() as conn:
            assert conn.execute(text("SELECT * FROM queue_members")).all() == [("q", "1001")]
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    finally:
        engine.dispose()


def test_a_failing_sqlite_migration_leaves_no_half_made_tables(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(RuntimeError, match="boom"):
            with migrations.migrating(engine) as conn:
                conn.execute(text("CREATE TABLE half (id INTEGER)"))
                raise RuntimeError("boom")
        assert tables(engine) == set()
    finally:
        engine.dispose()


def test_sqlite_connections_use_wal_busy_timeout_and_foreign_keys(tmp_path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert (pragma("journal_mode"), pragma("busy_timeout"), pragma("foreign_keys")) == ("wal", 5000, 1)
            assert pragma("synchronous") == 1          # NORMAL: no fsync per commit under WAL
        assert not engine.pool._pre_ping               # a file never drops a connection
    finally:
        engine.dispose()


@pytest.mark.parametrize("given", ["postgresql://u@h/db", "postgres://u@h/db", "postgresql+psycopg://u@h/db"])
def test_postgresql_urls_use_psycopg_3(given: str) -> None:
    assert normalize_url(given).drivername == "postgresql+psycopg"


def test_postgresql_engines_pre_ping() -> None:
    engine = make_engine("postgresql://u@h/db")       # no connection is made here
    assert engine.pool._pre_ping


def test_postgresql_engine_pings_and_speaks_psycopg_3(pg_url: str) -> None:
    engine = make_engine(pg_url)
    try:
        assert engine.dialect.driver == "psycopg" and engine.pool._pre_ping
        with engine.connect() as conn:
            assert conn.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
