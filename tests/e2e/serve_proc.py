"""Run ``callpilot serve`` as a real subprocess for end-to-end tests, and read what it wrote."""
from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from sqlalchemy import select

from callpilot.infra.config import Config, to_toml
from callpilot.infra.db import session as db
from callpilot.infra.db.models import CallRecord
from callpilot.app.status import fetch


@contextlib.contextmanager
def running_serve(config: Config, timeout: float = 30.0, *,
                  speech_loaded: bool = False) -> Iterator["ServeProcess"]:
    """A serve subprocess for a module's tests (synchronous fixtures), stopped after;
    ``speech_loaded``: and its speech models loaded (tests of recognition, not of loading)."""
    proc = ServeProcess(config).start()
    try:
        asyncio.run(proc.wait_ready(timeout=timeout))
        if speech_loaded:
            asyncio.run(proc.wait_speech_loaded(timeout=timeout))
        yield proc
    finally:
        proc.stop()


class ServeProcess:
    def __init__(self, config: Config):
        self.config = config
        self.config_path = config.state_dir / "config.toml"
        self.log_path = config.state_dir / "serve.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> "ServeProcess":
        self.config_path.write_text(to_toml(self.config))
        log = open(self.log_path, "ab")
        exe = Path(sys.executable).with_name("callpilot")
        self.proc = subprocess.Popen([str(exe), "--config", str(self.config_path), "serve"],
                                     stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        return self

    async def wait_ready(self, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            assert self.proc and self.proc.poll() is None, f"serve exited:\n{self.log_tail()}"
            status = await fetch(self.config.state_dir / "serve.sock")
            if status and status["ari"] == "connected" and status["ami"] == "logged_in":
                return status
            await asyncio.sleep(0.2)
        raise AssertionError(f"serve not ready in {timeout}s: {status}\n{self.log_tail()}")

    async def wait_speech_loaded(self, timeout: float = 60.0) -> dict:
        """Until no speech model is loading any more (serve loads them after it is ready,
        D40): for tests of recognition, whose first listen would otherwise wait for the load
        only ``speech_load_wait`` seconds and then ask by keys."""
        return await self.wait_for(lambda s: all(lang["state"] != "loading" for lang in s["speech"].values()),
                                   timeout=timeout, what="speech models loaded")

    async def status(self) -> dict:
        return await fetch(self.config.state_dir / "serve.sock") or {}

    async def wait_for(self, predicate, timeout: float = 20.0, what: str = "condition") -> dict:
        deadline = time.monotonic() + timeout
        status: dict = {}
        while time.monotonic() < deadline:
            status = await self.status()
            if status and predicate(status):
                return status
            await asyncio.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}: {status}\n{self.log_tail()}")

    def stop(self, kill: bool = False) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)

    async def stopped(self, kill: bool = False) -> None:
        """``stop`` for async tests: the wait for the process runs off the event loop, which
        keeps serving the test's SIP user agents meanwhile."""
        await asyncio.to_thread(self.stop, kill)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no serve log)"


@contextlib.contextmanager
def call_record_writes_stalled(config: Config) -> Iterator[None]:
    """A stalled database for the ``with`` block: another session holds the lock that writing
    a call record needs (SQLite: the write lock, ``BEGIN IMMEDIATE``; PostgreSQL: ``LOCK TABLE
    call_records IN EXCLUSIVE MODE``), so serve's record writes wait while reads go on."""
    engine = db.make_engine(config.db_url)
    conn = engine.connect()
    try:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql(f"LOCK TABLE {CallRecord.__tablename__} IN EXCLUSIVE MODE")
        yield
    finally:
        conn.rollback()
        conn.close()
        engine.dispose()


def records_for(config: Config, caller_id: str) -> list[CallRecord]:
    engine = db.make_engine(config.db_url)
    try:
        with db.make_sessionmaker(engine)() as s:
            return list(s.scalars(select(CallRecord).where(CallRecord.caller_id == caller_id)
                                  .order_by(CallRecord.started_at)))
    finally:
        engine.dispose()


async def wait_record(config: Config, caller_id: str, *, state: str = "ended",
                      timeout: float = 15.0) -> CallRecord:
    deadline = time.monotonic() + timeout
    rows: list[CallRecord] = []
    while time.monotonic() < deadline:
        rows = await asyncio.to_thread(records_for, config, caller_id)   # off the test's loop
        if rows and rows[-1].state == state:
            return rows[-1]
        await asyncio.sleep(0.25)
    raise AssertionError(f"no {state} record for {caller_id}: {[(r.state, r.outcome) for r in rows]}")


def waiting_in(queue: str):
    """A status predicate: one caller waits in ``queue``."""
    return lambda status: status["queues"].get(queue, {}).get("waiting") == 1


async def restart_then_answer(config: Config, call: asyncio.Task, caller_id: str, queue: str,
                              answer) -> tuple:
    """After serve was killed with a caller waiting: a new serve, the caller back in ``queue``
    as soon as it is ready (ARI says "connected" once its on_connect re-adoption has run, D39),
    an agent phone (``await answer()``) that answers it; the caller's result and ended record."""
    restarted = ServeProcess(config).start()
    try:
        status = await restarted.wait_ready()
        assert waiting_in(queue)(status), f"the caller not back in {queue} once ready: {status['queues']}"
        agent = await answer()
        await agent.wait_for("answered", timeout=20)
        result = await call
        return result, await wait_record(config, caller_id)
    finally:
        await restarted.stopped()

