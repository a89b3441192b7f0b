"""A throwaway PostgreSQL cluster for tests, and fresh databases on it or on an external server.

The cluster lives in a temporary directory, listens only on a unix socket inside it (no TCP),
trusts local connections only, runs with fsync off, and is removed when stopped.  When the
tests run as root, ``initdb`` and ``postgres`` run as the ``postgres`` OS user (they refuse
root).  The binaries come from the newest ``/usr/lib/postgresql/*/bin``.
"""
from __future__ import annotations

import glob
import logging
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.engine import URL, make_url

logger = logging.getLogger(__name__)

EXTERNAL_DB_ENV = "CALLPILOT_TEST_DATABASE_URL"   # an external server instead of a throwaway cluster
BIN_GLOB = "/usr/lib/postgresql/*/bin"
OS_USER = "postgres"
START_TIMEOUT = 20.0
MISSING = ("PostgreSQL server binaries not found ({where}). Run `make deps` (it installs the "
           "Debian package postgresql), or set CALLPILOT_TEST_DATABASE_URL to an external server.")
SERVER_SETTINGS = {
    "listen_addresses": "",            # unix socket only
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "60",
    "shared_buffers": "16MB",
}


class PostgresMissing(RuntimeError):
    """No PostgreSQL server binaries on this machine."""


def external_server_named() -> str:
    """The external server's URL named by ``CALLPILOT_TEST_DATABASE_URL`` ("" = none)."""
    return os.environ.get(EXTERNAL_DB_ENV, "").strip()


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``initdb`` and ``postgres``."""
    candidates = [Path(p) for p in glob.glob(BIN_GLOB)
                  if (Path(p) / "initdb").exists() and (Path(p) / "postgres").exists()]
    if not candidates:
        raise PostgresMissing(MISSING.format(where=f"no initdb in {BIN_GLOB}"))
    return max(candidates, key=lambda p: _major(p.parent.name))


def _major(name: str) -> tuple[int, ...]:
    return tuple(int(part) for part in name.split(".") if part.isdigit()) or (0,)


@dataclass
class PgCluster:
    """A running throwaway cluster; :meth:`start` it, :meth:`stop` it (also removes its files)."""

    bindir: Path
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="callpilot-pg-")))
    proc: subprocess.Popen | None = None
    start_seconds: float = 0.0

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def admin_url(self) -> URL:
        return self.url("postgres")

    def url(self, database: str) -> URL:
        """``postgresql+psycopg://postgres@/<database>?host=<socket dir>``."""
        return URL.create("postgresql+psycopg", username="postgres", database=database,
                          query={"host": str(self.root)})

    @classmethod
    def start_new(cls) -> PgCluster:
        cluster = cls(find_bindir())
        try:
            cluster.start()
        except BaseException:
            cluster.stop()
            raise
        return cluster

    def start(self) -> None:
        began = time.monotonic()
        run_as = _run_as()
        if run_as:
            uid, gid = run_as
            os.chown(self.root, uid, gid)
        os.chmod(self.root, 0o700)
        self._run([str(self.bindir / "initdb"), "-D", str(self.datadir), "-U", "postgres",
                   "-E", "UTF8", "--locale=C", "--auth-local=trust", "--auth-host=reject",
                   "--no-sync", "--no-instructions"], run_as)
        options = [arg for key, value in SERVER_SETTINGS.items() for arg in ("-c", f"{key}={value}")]
        log = open(self.root / "server.log", "wb")
        self.proc = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.datadir), "-k", str(self.root), *options],
            stdout=log, stderr=subprocess.STDOUT, cwd=self.root, **_popen_user(run_as))
        log.close()
        self._wait_ready()
        self.start_seconds = time.monotonic() - began
        logger.info("PostgreSQL %s up in %.2f s at %s", self.bindir.parent.name,
                    self.start_seconds, self.root)

    def _run(self, argv: list[str], run_as: tuple[int, int] | None) -> None:
        done = subprocess.run(argv, cwd=self.root, capture_output=True, text=True,
                              **_popen_user(run_as))
        if done.returncode:
            raise RuntimeError(f"{argv[0]} failed ({done.returncode}):\n{done.stdout}{done.stderr}")

    def _wait_ready(self) -> None:
        import psycopg

        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                psycopg.connect(host=str(self.root), user="postgres", dbname="postgres",
                                connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"postgres not ready after {START_TIMEOUT} s:\n{self.log_tail()}")
                time.sleep(0.02)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join((self.root / "server.log").read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no server log)"

    def stop(self) -> None:
        """Immediate shutdown (the data is thrown away), then remove the directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        shutil.rmtree(self.root, ignore_errors=True)


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) of the ``postgres`` OS user when running as root, else None (run as self)."""
    if os.geteuid() != 0:
        return None
    try:
        entry = pwd.getpwnam(OS_USER)
    except KeyError:
        raise PostgresMissing(MISSING.format(where=f"no {OS_USER!r} OS user to run it as")) from None
    return entry.pw_uid, entry.pw_gid


def _popen_user(run_as: tuple[int, int] | None) -> dict:
    if run_as is None:
        return {}
    uid, gid = run_as
    env = {"PATH": "/usr/bin:/bin", "LANG": "C", "HOME": "/var/lib/postgresql"}
    return {"user": uid, "group": gid, "extra_groups": [], "env": env}


# --------------------------------------------------------------------------- databases

def unique_name(prefix: str = "cp_test") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def create_database(server: URL | str, name: str) -> URL:
    """Create database ``name`` on the server of ``server`` (connected to its own database)."""
    server = make_url(server)
    _admin(server, f'CREATE DATABASE "{name}" TEMPLATE template0')
    return server.set(database=name)


def drop_database(server: URL | str, name: str) -> None:
    """Drop ``name``, closing any connection a test left open."""
    _admin(make_url(server), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(server: URL, sql: str) -> None:
    import psycopg

    params = {k: v for k, v in {"host": server.host or server.query.get("host"),
                                "port": server.port, "user": server.username,
                                "password": server.password, "dbname": server.database or "postgres",
                                }.items() if v is not None}
    with psycopg.connect(**params, autocommit=True) as conn:
        conn.execute(sql)
