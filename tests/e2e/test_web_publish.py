"""The admin web on a real instance: a flow edited and published in a real browser is what
the next real call runs (real Asterisk 22, serve, sipp caller, headless chromium)."""
from __future__ import annotations

import asyncio
import dataclasses
import uuid

import pytest
from selenium.webdriver.common.by import By

from admin_web import accounts, db
from admin_web.app import create_app
from callpilot.app.web import build_services
from callpilot.infra.config import AcdConfig
from testkit.sipua import Caller
from tests.e2e.serve_proc import wait_record
from tests.web.browser import LiveServer, chromium, graph_ready, log_in, publish, set_field, visible

pytestmark = pytest.mark.e2e

PASSWORD = "e2e-admin-password"


@pytest.fixture
def cfg(e2e_config, asterisk):
    return dataclasses.replace(e2e_config, acd=AcdConfig(ring_timeout=6, wrapup_seconds=1))


@pytest.fixture
def web(cfg, serve):
    """The admin web on the instance's database, with an admin account; the main flow is
    rolled back to what it was afterwards (other tests of the session call DID 800)."""
    services = build_services(cfg)
    app = create_app(cfg, services, {"SECRET_KEY": "e2e"})
    username = f"admin-{uuid.uuid4().hex[:6]}"
    with app.app_context():
        accounts.create_user(db.get(), username, PASSWORD, "admin")
    live_before = services.flows.latest_versions()["main"]
    with LiveServer(app) as server:
        yield server, username, services
    if services.flows.latest_versions()["main"] != live_before:
        services.flows.rollback("main", live_before, "e2e", "restore after test_web_publish")
    db.dispose(app)


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
    number = "1555" + uuid.uuid4().hex[:6].translate(str.maketrans("abcdef", "123456"))
    a = cfg.asterisk
    await Caller("800", a.sip_host, a.sip_port, local_ip=a.trunk_ips[0], from_number=number,
                 dtmf="1", dtmf_delay=1.0, hold_seconds=6).run()
    record = await wait_record(cfg, number)
    assert record.menu_path[0] == "main_menu=1", record.menu_path
    assert record.journey["version"] == before + 1
    assert record.queue == "cards"                   # billing before the edit
