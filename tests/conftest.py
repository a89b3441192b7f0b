"""Fixtures shared by every test directory: databases on both supported backends; how
``--dist loadfile`` spreads files over workers (tests/scheduling.py)."""
from __future__ import annotations

import pytest
from sqlalchemy.engine import URL, make_url

from callpilot.infra.db.session import create_schema, make_engine, make_sessionmaker
from tests import pg, scheduling

EXTERNAL_DB_ENV = pg.EXTERNAL_DB_ENV


def _external_server() -> URL | None:
    value = pg.external_server_named()
    if not value:
        return None
    url = make_url(value)
    if url.get_backend_name() != "postgresql":
        raise pytest.UsageError(f"{EXTERNAL_DB_ENV} must be a postgresql URL, not {value!r}")
    return url.set(drivername="postgresql+psycopg")


BACKENDS = ["postgresql"] if _external_server() else ["sqlite", "postgresql"]
E2E_POSTGRESQL_OPTION = "--e2e-postgresql"
_SCHEDULER = pytest.StashKey["scheduling.FileScheduling"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(E2E_POSTGRESQL_OPTION, action="append", default=[], metavar="FILE",
                     help="run this end-to-end file's tests on SQLite and again on PostgreSQL, "
                          "as items of their own (ids 'sqlite', 'postgresql'); repeatable")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A collected file named by ``--e2e-postgresql`` must have PostgreSQL items (its tests
    use the ``e2e_database`` fixture), else the option would silently do nothing."""
    collected = {item.path.resolve() for item in items}
    doubled = {item.path.resolve() for item in items if scheduling.is_postgresql_copy(item.nodeid)}
    for name in config.getoption("e2e_postgresql"):
        path = (config.invocation_params.dir / name).resolve()
        if not path.exists() or (path in collected and path not in doubled):
            raise pytest.UsageError(f"{E2E_POSTGRESQL_OPTION} {name}: no such end-to-end file "
                                    "with tests on the e2e_database fixture")


@pytest.hookimpl(optionalhook=True)      # also without xdist (-p no:xdist)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """``--dist loadfile``: files heaviest first, PostgreSQL copies apart (tests/scheduling.py)."""
    if config.getvalue("dist") != "loadfile":
        return None
    sched = scheduling.FileScheduling(config, log)
    config.stash[_SCHEDULER] = sched
    return sched


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """A passing run records its seconds per file in var/ (the weights' refresh)."""
    sched = session.config.stash.get(_SCHEDULER, None)
    if sched is not None and exitstatus == pytest.ExitCode.OK:
        scheduling.record_times(sched.seconds)


@pytest.fixture(scope="session")
def pg_server() -> URL:
    """URL of a PostgreSQL server to create test databases on (connected to its own database).

    A throwaway cluster for the session (unix socket in a temp dir, trust for local only,
    removed at the end) unless ``CALLPILOT_TEST_DATABASE_URL`` names an external server.
    Fails, does not skip, when PostgreSQL is not installed: ``make deps`` installs it.
    """
    external = _external_server()
    if external is not None:
        yield external
        return
    try:
        cluster = pg.PgCluster.start_new()
    except pg.PostgresMissing as exc:
        missing = str(exc)
    else:
        missing = None
    if missing:
        pytest.fail(missing, pytrace=False)
    try:
        yield cluster.admin_url
    finally:
        cluster.stop()


@pytest.fixture
def pg_url(pg_server: URL) -> str:
    """A fresh, empty PostgreSQL database for this test (``postgresql+psycopg://``), dropped after."""
    name = pg.unique_name()
    url = pg.create_database(pg_server, name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        pg.drop_database(pg_server, name)


@pytest.fixture(params=BACKENDS)
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    """SQLAlchemy URL of a fresh, empty database, once per backend: ids ``sqlite``, ``postgresql``.

    ``sqlite``: a new file in the test's tmp_path.  ``postgresql``: a new database on
    :func:`pg_server` (``postgresql+psycopg://``), dropped after the test.
    With ``CALLPILOT_TEST_DATABASE_URL=postgresql+psycopg://user:pw@host:port/db`` set, every
    ``db_url`` test runs on that server only (the user needs CREATEDB; ``db`` is where the
    CREATE/DROP DATABASE statements are sent) and no throwaway cluster is started.
    """
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'callpilot.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def sessions(tmp_path):
    """A session factory on a fresh, migrated SQLite file (for tests of one backend)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'callpilot.db'}")
    create_schema(engine)
    yield make_sessionmaker(engine)
    engine.dispose()
