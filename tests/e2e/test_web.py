"""The admin web on a real instance (real Asterisk 22, serve, sipp UAs, headless chromium):

* a flow edited and published in the browser is what the next real call runs;
* the wallboard shows a waiting call within 2 s of the caller entering the queue;
* the agent page pops the caller's profile while the agent's phone rings;
* it pops a web 'call me' callback's context while the agent's phone rings for it, and the
  callback, back in line after the agent did not answer, is cancelled on the callbacks page.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By

from admin_web import accounts, db
from admin_web.app import create_app
from callpilot.app.web import build_services
from callpilot.infra.config import AcdConfig, to_toml
from callpilot.infra.db import session as dbs
from callpilot.infra.db.models import Customer
from testkit.ports import free_port
from testkit.sipua import Caller
from tests.e2e.serve_proc import records_for, wait_record
from tests.web.browser import (chromium, graph_ready, log_in, publish, screenshot,
                               set_field, visible, wait)

pytestmark = pytest.mark.e2e

logger = logging.getLogger(__name__)

PASSWORD = "e2e-web-password"
WITHIN = 2.0          # the bound for the wallboard
MARGIN = 0.5          # the test's own polling (DOM every 50 ms, serve's status every 200 ms) and load


@pytest.fixture
def cfg(e2e_config, asterisk):
    return dataclasses.replace(e2e_config, acd=AcdConfig(ring_timeout=6, wrapup_seconds=1,
                                                           autopause_after=1))   # RONA: paused at once


class WebProcess:
    """``callpilot web`` as a real subprocess (waitress) on the instance's config."""

    def __init__(self, config) -> None:
        self.port = free_port("127.0.0.1", (socket.SOCK_STREAM,))
        self.config = dataclasses.replace(config, web_port=self.port)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = config.state_dir / "web.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> WebProcess:
        path = self.config.state_dir / "web-config.toml"
        path.write_text(to_toml(self.config))
        exe = Path(sys.executable).with_name("callpilot")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen([str(exe), "--config", str(path), "web"], stdout=log,
                                         stderr=subprocess.STDOUT, env=dict(os.environ))
        deadline = time.monotonic() + 60
        while not self._healthy():
            assert self.proc.poll() is None, self.log_path.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, "callpilot web did not start"
            time.sleep(0.2)
        return self

    def _healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


@pytest.fixture
def web(cfg, serve):
    """``callpilot web`` on the instance's database, with an admin and an agent account; the
    main flow is rolled back to what it was afterwards (other tests call DID 800)."""
    engine = dbs.make_engine(cfg.db_url)     # disposed at the end: see the note below
    sessions = dbs.make_sessionmaker(engine)
    services = build_services(cfg, sessions)
    username = f"admin-{uuid.uuid4().hex[:6]}"
    with sessions() as session:
        accounts.create_user(session, username, PASSWORD, "admin")
        accounts.create_user(session, f"{username}-1001", PASSWORD, "agent", "1001")
    live_before = services.flows.latest_versions()["main"]
    process = WebProcess(cfg).start()
    try:
        yield process, username, services
    finally:
        process.stop()
        if services.flows.latest_versions()["main"] != live_before:
            restored = services.flows.rollback("main", live_before, "e2e", "restore after test_web_publish")
            wait_live(serve, "main", restored)      # the next test's call must not get the edited flow
        # SQLite: connections this process kept open past serve's restart (the next test's
        # serve) made the next test read a stale or "malformed" database; not yet understood
        # (docs/decisions.md, admin web); PostgreSQL ran the same sequence without it.
        engine.dispose()


def edit_billing_queue_and_publish(base: str, username: str, queue: str) -> None:
    driver = chromium()
    try:
        log_in(driver, base, username, PASSWORD)
        driver.get(f"{base}/flows/main/?node=to_billing")
        graph_ready(driver)
        set_field(driver, "queue", queue)
        driver.find_element(By.ID, "save-node").click()
        assert visible(driver, "#draft-status").text == "Draft is valid."
        publish(driver, f"billing calls to {queue}")
    finally:
        driver.quit()


async def test_published_version_is_what_the_next_call_runs(cfg, serve, web):
    server, username, services = web
    before = services.flows.latest_versions()["main"]
    await asyncio.to_thread(edit_billing_queue_and_publish, server.url, username, "cards")
    assert services.flows.latest_versions()["main"] == before + 1
    await serve.wait_for(lambda _s: f"flow main: version {before + 1} live"
                         in serve.log_path.read_text(errors="replace"), what="new version live")
    number = caller_number()
    await caller(cfg, number, "800", dtmf="1", hold=6).run()
    record = await wait_record(cfg, number)
    assert record.menu_path[0] == "main_menu=1", record.menu_path
    assert record.journey["version"] == before + 1
    assert record.queue == "cards"                   # billing before the edit


def wait_live(serve, flow: str, version: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while f"flow {flow}: version {version} live" not in serve.log_path.read_text(errors="replace"):
        assert time.monotonic() < deadline, f"serve did not take {flow} version {version}"
        time.sleep(0.2)


def caller_number() -> str:
    return "1555" + uuid.uuid4().hex[:6].translate(str.maketrans("abcdef", "123456"))


def caller(cfg, number: str, did: str, dtmf: str = "", hold: float = 10.0) -> Caller:
    a = cfg.asterisk
    return Caller(did, a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=number,
                  dtmf=dtmf, dtmf_delay=1.0, hold_seconds=hold)


def pop_title(driver) -> str:
    return driver.execute_script("return document.getElementById('pop-title').textContent;")


def waiting_count(driver, queue: str) -> int:
    return driver.execute_script(
        "var row = document.querySelector('#queue-board tr[data-queue=\"' + arguments[0] + '\"]');"
        "return row ? parseInt(row.querySelector('.waiting-count').textContent, 10) || 0 : -1;", queue)


async def test_wallboard_shows_a_waiting_call_within_2_s(cfg, serve, web):
    """No agent phone is registered: a call to the queue DID waits.  Measured from the first
    serve snapshot that lists the call as waiting to the first DOM update showing it."""
    server, username, _services = web
    driver = chromium()
    try:
        log_in(driver, server.url, username, PASSWORD)
        driver.get(f"{server.url}/wallboard/")
        wait(driver, lambda d: d.find_element(By.ID, "serve-state").text == "live")
        queue = cfg.asterisk.queue_dids["803"]
        assert waiting_count(driver, queue) <= 0
        number = caller_number()
        call = asyncio.create_task(caller(cfg, number, "803", hold=8).run())
        await serve.wait_for(lambda s: any(c["caller_id"] == number for c in s["waiting"]),
                             what="the call waiting in serve")
        entered = time.monotonic()
        while waiting_count(driver, queue) < 1 and time.monotonic() - entered < 10:
            await asyncio.sleep(0.05)
        shown = time.monotonic() - entered
        logger.info("wallboard showed the waiting call %.2f s after serve listed it", shown)
        screenshot(driver, "wallboard.png")
        assert waiting_count(driver, queue) == 1
        assert shown <= WITHIN + MARGIN, f"wallboard showed the call after {shown:.2f} s"
        await call
    finally:
        driver.quit()


async def test_agent_page_pops_the_profile_while_the_phone_rings(cfg, serve, web, agent_phone):
    server, username, _services = web
    number = caller_number()
    engine = dbs.make_engine(cfg.db_url)
    with dbs.make_sessionmaker(engine)() as session:
        session.add(Customer(phone=number, name="Seo Yuna", birth_year=1960, segment="vip", language="ko"))
        session.commit()
    engine.dispose()
    driver = chromium()
    try:
        log_in(driver, server.url, f"{username}-1001", PASSWORD)
        assert driver.current_url.endswith("/agent/")
        phone = await agent_phone("1001", answer_delay=5.0)
        await serve.wait_for(lambda s: s["agents"]["1001"]["state"] == "available"
                             and s["agents"]["1001"]["device"] == "NOT_INUSE", what="agent 1001 ready")
        call = asyncio.create_task(caller(cfg, number, "800", dtmf="1", hold=10).run())
        await phone.wait_for("ringing", timeout=20)
        rang = time.monotonic()
        try:
            await asyncio.to_thread(wait, driver, lambda d: pop_title(d) == "Ringing: Seo Yuna")
        except TimeoutException:
            records = [(r.state, r.agent, r.queue) for r in records_for(cfg, number)]
            raise AssertionError(f"page shows {pop_title(driver)!r}; records {records}") from None
        popped = time.monotonic() - rang
        logger.info("screen pop %.2f s after the agent phone sent 180 Ringing", popped)
        details = driver.execute_script(   # one read: the pop is re-rendered by each event
            "var out = {}; document.querySelectorAll('#pop-details dd').forEach("
            "function (dd) { out[dd.dataset.field] = dd.textContent; }); return out;")
        screenshot(driver, "agent-screen-pop.png")
        assert popped < 5.0, "the pop must show while the phone still rings (answers after 5 s)"
        assert details["caller"] == number and details["segment"] == "vip"
        assert details["age band"] == "55+" and details["queue"] == "billing"
        assert details["IVR path"].startswith("main_menu=1")
        await asyncio.to_thread(wait, driver, lambda d: pop_title(d) == "On call: Seo Yuna")
        await call
        await set_state_in_page(driver, serve, "pause", "coaching")
        await set_state_in_page(driver, serve, "available", "")
    finally:
        driver.quit()


def pop_details(driver) -> dict[str, str]:
    return driver.execute_script(   # one read: the pop is re-rendered by each event
        "var out = {}; document.querySelectorAll('#pop-details dd').forEach("
        "function (dd) { out[dd.dataset.field] = dd.textContent; }); return out;")


async def until(predicate, what: str, timeout: float = 30.0):
    """Poll ``predicate`` (blocking: run off the loop) until it returns something true."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(predicate)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


async def test_agent_page_pops_a_callbacks_context_and_it_is_cancelled_in_the_web(cfg, serve, web, agent_phone):
    """A 'call me' from the web site (the row the callme endpoint writes) is placed by serve:
    agent first, so the agent's phone rings for it and the page shows its reason, reference
    and requested window.  The agent does not answer: serve puts the callback back in line
    (RONA), and the supervisor cancels it on the callbacks page."""
    from datetime import datetime, timedelta, timezone
    from callpilot.infra.db.callback_store import CallbackStore, NewCallback
    from callpilot.infra.db.callbacks import CallbackSource, CallbackState
    from tests.web.conftest import AuthActions
    server, username, services = web
    engine = dbs.make_engine(cfg.db_url)
    store = CallbackStore(dbs.make_sessionmaker(engine), instance="e2e")
    app = create_app(cfg, services, {"SECRET_KEY": "e2e"})
    driver = chromium()
    callback = None
    try:
        log_in(driver, server.url, f"{username}-1001", PASSWORD)
        phone = await agent_phone("1001", behaviour="no_answer")
        await serve.wait_for(lambda s: s["agents"]["1001"]["state"] == "available"
                             and s["agents"]["1001"]["device"] == "NOT_INUSE", what="agent 1001 ready")
        now = datetime.now(timezone.utc)
        callback, created = store.create(NewCallback(
            number="+8210" + caller_number()[-8:], queue="billing", entered_at=now, source=CallbackSource.WEB,
            expires_at=now + timedelta(hours=1), name="Han Jiwoo", reason="card declined abroad",
            context={"reference": "TX-4471"}, not_before=now, window_end=now + timedelta(hours=1)), now)
        assert created
        await phone.wait_for("ringing", timeout=20)
        try:
            await asyncio.to_thread(wait, driver, lambda d: pop_title(d) == "Ringing: callback to Han Jiwoo")
        except TimeoutException:
            raise AssertionError(f"page shows {pop_title(driver)!r}; callback {store.get(callback.id).state}") from None
        details = pop_details(driver)
        screenshot(driver, "agent-callback-pop.png")
        assert details["callback"] == "'call me' on the web site" and details["reason"] == "card declined abroad"
        assert details["reference"] == "TX-4471" and details["queue"] == "billing"
        assert details["requested window"].startswith(now.astimezone().strftime("%Y-%m-%d %H:%M"))
        assert [a.agent for a in store.attempts(callback.id)] == ["1001"]
        # not answered within ring_timeout: the agent is paused, the callback is back in line
        await serve.wait_for(lambda s: s["agents"]["1001"]["state"] == "paused", what="agent 1001 RONA-paused")
        await until(lambda: store.get(callback.id).state == CallbackState.PENDING.value, "callback back in line")
        await asyncio.to_thread(wait, driver, lambda d: pop_title(d) == "No call")
        auth = AuthActions(app.test_client())
        await asyncio.to_thread(auth.login, username, PASSWORD)
        page = await asyncio.to_thread(auth.post, f"/callbacks/{callback.id}/cancel", {}, follow_redirects=True)
        assert b"cancelled" in page.data, page.data[-2000:]
        row = store.get(callback.id)
        assert row.state == CallbackState.CANCELLED.value and row.attempts == 0     # the agent's miss is not counted
        await set_state_in_page(driver, serve, "available", "")
    finally:
        driver.quit()
        if callback is not None:         # never left open for the next tests' agent 1001
            store.close(callback.id, CallbackState.CANCELLED, datetime.now(timezone.utc), "e2e cleanup",
                        only_from=(CallbackState.PENDING,))
        db.dispose(app)
        engine.dispose()


async def set_state_in_page(driver, serve, button: str, reason: str) -> None:
    """The agent's state buttons reach serve (through its status socket)."""
    field = driver.find_element(By.CSS_SELECTOR, '#state-form [name="reason"]')
    field.clear()
    field.send_keys(reason)
    driver.find_element(By.CSS_SELECTOR, f'#state-form button[value="{button}"]').click()
    state = "paused" if button == "pause" else "available"
    await serve.wait_for(lambda s: s["agents"]["1001"]["state"] == state
                         and s["agents"]["1001"]["pause_reason"] == reason, what=f"agent 1001 {state}")
    await asyncio.to_thread(wait, driver, lambda d: d.find_element(By.ID, "agent-state").text.startswith(state))


async def test_queue_saved_in_the_web_is_used_by_serve_at_once(cfg, serve, web):
    """No restart: the web tells serve to reload the queues.  Queue 'acd' (DID 803) gets a
    2 s max wait with overflow to 'general'; the next call there moves to 'general'."""
    from tests.web.conftest import AuthActions
    _server, username, services = web
    app = create_app(cfg, services, {"SECRET_KEY": "e2e"})     # its test client: no socket of its own
    client = app.test_client()
    auth = AuthActions(client)
    await asyncio.to_thread(auth.login, username, PASSWORD)     # the web blocks: off the loop
    queue = cfg.asterisk.queue_dids["803"]
    await asyncio.to_thread(auth.post, "/queues/new", {"name": queue})
    form = {"title": queue, "sl_target_seconds": "20", "sl_target_percent": "80", "join_empty": "y",
            "announce_frequency": "30", "announce_position": "y", "max_wait_seconds": "2",
            "overflow_queue": "general"}
    try:
        saved = await asyncio.to_thread(auth.post, f"/queues/{queue}", form, follow_redirects=True)
        assert b"serve uses it now" in saved.data
        number = caller_number()
        call = asyncio.create_task(caller(cfg, number, "803", hold=9).run())
        await serve.wait_for(lambda s: any(c["caller_id"] == number and c["queue"] == queue for c in s["waiting"]),
                             what=f"the call waiting in {queue}")
        await serve.wait_for(lambda s: any(c["caller_id"] == number and c["queue"] == "general"
                                           for c in s["waiting"]), timeout=10, what="overflow to general")
        await call
    finally:
        await asyncio.to_thread(auth.post, f"/queues/{queue}", {**form, "max_wait_seconds": "0",
                                                               "overflow_queue": ""})
        db.dispose(app)
