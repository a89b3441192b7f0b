"""Fixtures for end-to-end tests against a real Asterisk and real SIP user agents (sipp).

* ``e2e_database``    ``"sqlite"`` or ``"postgresql"``, the database of the instance;
                      ``--e2e-postgresql FILE`` runs a file's tests on both.
* ``e2e_config``      module Config: tmp state dir, free ports, demo data seeded.
* ``demo_passwords``  ``{"1001": "...", ...}`` clear SIP passwords of the demo agents.
* ``asterisk``        module: ``runner.up`` once (errors loudly if it cannot start),
                      ``runner.down`` after the module's tests; yields the Config.

The shared instance is one per test file, not per worker: a call a file leaves in Asterisk
(serve's stop parks calls in Stasis for its next start) cannot reach the next file, whatever
the order the scheduler gives files in (D30).
* ``agent_phone``     factory: ``await agent_phone("1001", behaviour="answer")`` -> started
                      :class:`AgentPhone`; stopped and unregistered after the test.
* ``make_caller``     factory: ``make_caller("800", dtmf="1")`` -> :class:`Caller` aimed at
                      the instance (from the trunk IP 127.0.0.2 unless told otherwise).
* ``ari_app``         factory: ``async with ari_app("name") as ari`` -> test ARI client.
* ``own_instance``    an Asterisk and a ready serve of the test's own (for tests that stop,
                      kill or restart them): ``(cfg, serve, passwords)``.

Extra instances (e.g. a second Asterisk) can be configured with :func:`make_e2e_config`.
"""
from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass
from typing import AsyncIterator, Iterator

import pytest

from callpilot.app import demo

from testkit import sipua
from callpilot.infra.config import Config
from testkit.isolated import isolated_config
from tests import pg, scheduling
from tests.e2e.helpers import AriTestClient, asterisk_running
from tests.e2e.serve_proc import ServeProcess

logger = logging.getLogger(__name__)

E2E_DATABASE_ENV = "CALLPILOT_E2E_DATABASE"    # "sqlite" (default) or "postgresql"
DATABASES = ("sqlite", scheduling.POSTGRESQL_ID)

# Extra instances (a second Asterisk, a fresh one for a check of its own log):
make_e2e_config = isolated_config


@contextlib.contextmanager
def demo_instance(state_dir, *, short_acd_timers: bool = False,
                  **asterisk_overrides) -> Iterator[tuple[Config, dict[str, str]]]:
    """A `make run`-style instance of a test's (or module's) own: default configuration,
    demo data, Asterisk up (down again after): ``(config, agent passwords)``."""
    config = make_e2e_config(state_dir, **asterisk_overrides)
    if short_acd_timers:
        config.acd.ring_timeout, config.acd.wrapup_seconds = 6, 1
    passwords = demo.seed(config)
    with asterisk_running(config):
        yield config, passwords


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A file named by ``--e2e-postgresql`` runs on both databases, as items of their own
    (ids ``sqlite``, ``postgresql``) that the scheduler may give to different workers."""
    if "e2e_database" in metafunc.fixturenames and _on_both_databases(metafunc):
        metafunc.parametrize("e2e_database", DATABASES, indirect=True)


def _on_both_databases(metafunc: pytest.Metafunc) -> bool:
    config = metafunc.config
    named = {(config.invocation_params.dir / f).resolve() for f in config.getoption("e2e_postgresql")}
    return metafunc.definition.path.resolve() in named


@pytest.fixture(scope="session")
def e2e_database(request) -> str:
    """The item's database parameter, else ``CALLPILOT_E2E_DATABASE`` (default sqlite).
    Going on to items of the other database tears down what depends on it (the module's
    shared instance, a module's own instance that asks for it) and makes it anew."""
    return getattr(request, "param", None) or os.environ.get(E2E_DATABASE_ENV, "sqlite")


@dataclass
class E2EEnv:
    config: Config
    passwords: dict[str, str]


@pytest.fixture(scope="module")
def e2e_env(request, tmp_path_factory, e2e_database: str) -> E2EEnv:
    """On ``postgresql`` the instance's serve, CLI and tests use a fresh database on the
    session's PostgreSQL server instead of the SQLite file."""
    config = make_e2e_config(tmp_path_factory.mktemp("callpilot-e2e") / "state",
                             queue_dids={"803": "acd", "804": "acd_overflow"})  # ACD tests
    if e2e_database == "postgresql":
        server = request.getfixturevalue("pg_server")
        url = pg.create_database(server, pg.unique_name("cp_e2e"))
        config.database_url = url.render_as_string(hide_password=False)
    logger.info("e2e database: %s", config.db_url)
    return E2EEnv(config, demo.seed(config))


@pytest.fixture(scope="module")
def e2e_config(e2e_env: E2EEnv) -> Config:
    return e2e_env.config


@pytest.fixture(scope="module")
def demo_passwords(e2e_env: E2EEnv) -> dict[str, str]:
    return dict(e2e_env.passwords)


@pytest.fixture(scope="module")
def asterisk(e2e_config: Config):
    """The module's Asterisk.  No skip: if it cannot start, every e2e test errors."""
    with asterisk_running(e2e_config):
        yield e2e_config


@pytest.fixture
async def agent_phone(asterisk: Config, demo_passwords: dict[str, str]):
    phones: list[sipua.AgentPhone] = []

    async def start(ext: str, **kwargs) -> sipua.AgentPhone:
        kwargs.setdefault("password", demo_passwords[ext])
        phone = sipua.AgentPhone(ext, server_host=asterisk.asterisk.sip_host,
                                 server_port=asterisk.asterisk.sip_port, **kwargs)
        phones.append(phone)
        await phone.start()
        return phone

    yield start
    for phone in phones:
        await phone.stop()
        if phone.register_status == 200:
            with contextlib.suppress(Exception):
                await phone.unregister()


@pytest.fixture
def make_caller(asterisk: Config):
    def make(did: str, **kwargs) -> sipua.Caller:
        return sipua.Caller(did, server_host=asterisk.asterisk.sip_host,
                            server_port=asterisk.asterisk.sip_port, **kwargs)
    return make


@pytest.fixture
def ari_app(asterisk: Config):
    @contextlib.asynccontextmanager
    async def connect(app: str) -> AsyncIterator[AriTestClient]:
        async with AriTestClient(asterisk, app) as client:
            yield client
    return connect


# -- serve and agent phones for the call tests; each test module defines ``cfg`` -----------


@pytest.fixture
async def serve(cfg):
    """``callpilot serve`` as a subprocess on the module's ``cfg``, ready (ARI + AMI up).
    Its agents start as the demo seeded them: the presence an earlier test's serve shared
    on this database (a pause, an autopause, a log-out: D43) is cleared first."""
    forget_shared_agents(cfg)
    proc = ServeProcess(cfg).start()
    try:
        await proc.wait_ready()
        yield proc
    finally:
        await proc.stopped()


def forget_shared_agents(cfg: Config) -> None:
    """Empty the tables serves share their agents through (``acd.shared_agents``)."""
    from sqlalchemy import delete
    from callpilot.infra.db.shared_state import AgentHold, AgentPresence
    from callpilot.infra.db.session import make_engine
    engine = make_engine(cfg.db_url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(AgentPresence.__table__))
            conn.execute(delete(AgentHold.__table__))
    finally:
        engine.dispose()


@pytest.fixture
async def phones(cfg, demo_passwords):
    """Factory of registered agent phones; all unregistered and stopped after the test."""
    pool = sipua.PhonePool(cfg, demo_passwords)
    yield pool.start
    await pool.close()


@contextlib.asynccontextmanager
async def instance_of_its_own(state_dir, **asterisk_overrides):
    """Demo data, Asterisk up, serve ready; short ACD timers: ``(cfg, serve, passwords)``."""
    with demo_instance(state_dir, short_acd_timers=True, **asterisk_overrides) as (cfg, passwords):
        serve = ServeProcess(cfg).start()
        try:
            await serve.wait_ready()
            yield cfg, serve, passwords
        finally:
            await serve.stopped()


@pytest.fixture
async def own_instance(tmp_path):
    """An instance of the test's own (see :func:`instance_of_its_own`)."""
    async with instance_of_its_own(tmp_path / "state") as parts:
        yield parts
