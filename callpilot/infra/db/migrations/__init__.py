"""Schema migrations (Alembic), run to head by ``create_schema`` at every start.

* Runtime: :func:`upgrade` brings any database, empty or older, to the newest revision.  It
  holds a lock meanwhile (a PostgreSQL advisory lock; a lock file beside a SQLite file), so
  several processes or nodes starting together migrate once.  It never imports the models:
  revisions are self-contained.
* Changing the models: ``python -m callpilot.infra.db.migrations revision "add campaigns"`` writes
  the next numbered revision in ``versions/`` by comparing the models with a scratch database
  migrated to head; read it, fix it if needed, commit it with the model change.
  ``python -m callpilot.infra.db.migrations check`` lists differences (the unit tests do the same).
* A module that declares tables on ``callpilot.infra.db.base.Base`` must be listed in
  :data:`MODEL_MODULES` so the comparison sees its tables.
"""
from __future__ import annotations

import contextlib
import fcntl
import importlib
import logging
from pathlib import Path
from typing import Any, Iterator

from alembic import command
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, MetaData, func, inspect, select
from sqlalchemy.engine import Engine
from sqlalchemy.types import TypeDecorator

logger = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
# Every module that declares tables on callpilot.infra.db.base.Base (imported only to compare).
MODEL_MODULES = (
    "callpilot.infra.db.models",
    "callpilot.infra.db.callbacks",
    "callpilot.infra.db.calendars",
    "callpilot.infra.db.surveys",
    "ivr.store",
    "callpilot.infra.db.campaigns",
    "callpilot.infra.db.web_users",
    "callpilot.infra.db.shared_state",
)
PG_LOCK_KEY = 0x43_50_4D_49_47  # "CPMIG": one advisory lock for schema migrations


class SchemaError(RuntimeError):
    """The database cannot be brought to the schema this code needs."""


def alembic_config(connection: Connection | None = None, **attributes: Any) -> Config:
    """An Alembic config for this package; ``connection`` is where revisions run."""
    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes["connection"] = connection
    config.attributes.update(attributes)
    return config


def script() -> ScriptDirectory:
    return ScriptDirectory.from_config(alembic_config())


def head() -> str | None:
    """The single head revision (a clear error if two revisions claim the same parent)."""
    heads = script().get_heads()
    if len(heads) > 1:
        raise SchemaError(f"migrations have {len(heads)} heads {heads}: two revisions share a "
                           "parent; renumber yours so its down_revision is the other one")
    return heads[0] if heads else None


def current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine) -> None:
    """Migrate the database to head, once even if several processes start together."""
    target = head()
    with engine.connect() as connection:
        if current(connection) == target:
            return
    with migrating(engine) as connection:
        before = current(connection)
        if before == target:
            return
        unversioned = before is None and bool(inspect(connection).get_table_names())
        try:
            command.upgrade(alembic_config(connection), "head")
        except Exception as exc:
            if unversioned:
                raise SchemaError(
                    f"{_where(engine)} has tables but no migration history (made by create_all "
                    f"before migrations existed) and they differ from revision 0001: {exc}. "
                    "Back it up and remove it (`make clean` for the demo state), or migrate it "
                    "by hand and stamp it") from exc
            raise
    logger.info("%s migrated from %s to %s", _where(engine), before or "empty", target)


def _where(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


@contextlib.contextmanager
def migrating(engine: Engine) -> Iterator[Connection]:
    """A connection holding the migration lock, in one transaction committed at the end.

    PostgreSQL: a transaction-scoped advisory lock; its DDL is transactional.  SQLite: a lock
    file beside the database, foreign keys off meanwhile (dropping a table while Alembic's
    batch mode copies it would otherwise fire ON DELETE CASCADE on the rows that point at it),
    ``PRAGMA foreign_key_check`` before the commit, and an explicit ``BEGIN IMMEDIATE`` so the
    DDL is rolled back too if a revision fails (pysqlite leaves DDL outside transactions).
    """
    if engine.dialect.name != "sqlite":
        with engine.begin() as connection:
            if engine.dialect.name == "postgresql":
                connection.execute(select(func.pg_advisory_xact_lock(PG_LOCK_KEY)))
            yield connection
        return
    with _sqlite_lock(engine.url.database), engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA foreign_keys=OFF")     # no effect inside a transaction
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE")
            yield connection
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
            if broken:
                raise SchemaError(f"migration left rows with dangling foreign keys: {broken[:5]}")
            connection.commit()
        except BaseException:
            connection.rollback()
            raise
        finally:
            connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.commit()


@contextlib.contextmanager
def _sqlite_lock(database: str | None) -> Iterator[None]:
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}-migrate.lock", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def target_metadata() -> MetaData:
    """``Base.metadata`` with every model module imported."""
    for name in MODEL_MODULES:
        importlib.import_module(name)
    from callpilot.infra.db.base import Base
    return Base.metadata


def differences(connection: Connection) -> list[Any]:
    """What the models have that the database (migrated to head) lacks, or the reverse."""
    from alembic.autogenerate import compare_metadata

    context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                           "render_item": render_item})
    return compare_metadata(context, target_metadata())


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Render our TypeDecorators as their plain SQLAlchemy type: revisions import no app code."""
    if type_ == "type" and isinstance(obj, TypeDecorator):
        impl = obj.impl_instance
        return f"sa.{impl!r}"
    return False
