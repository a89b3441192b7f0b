"""In a real browser (headless Debian chromium): the callbacks page lists callbacks with their
attempts, filters them, cancels a pending one, and refuses one that serve claimed after the
page was drawn; the agent page pops a callback's context when the agent's phone rings for it."""
from __future__ import annotations

from datetime import timedelta

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.web.browser import LiveServer, chromium, console_errors, log_in, screenshot, visible, wait
from tests.web.conftest import PASSWORDS
from tests.web.test_callbacks import NOW, _new, callbacks, store  # noqa: F401  (fixtures)


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def _row(driver, callback_id: str):
    return driver.find_element(By.CSS_SELECTOR, f'tr[data-callback="{callback_id}"]')


def test_list_filter_and_cancel(app, store, callbacks, browser):
    web = _new(store, "+821044440000", queue="billing", name="Lee", reason="card declined abroad",
               context={"reference": "TX-88121", "page": "/cards/declined"},
               not_before=NOW + timedelta(minutes=30), window_end=NOW + timedelta(minutes=90))
    with LiveServer(app) as server:
        log_in(browser, server.url, "super", PASSWORDS["super"])
        browser.find_element(By.LINK_TEXT, "Callbacks").click()
        visible(browser, "#callbacks")
        assert len(browser.find_elements(By.CSS_SELECTOR, "tr[data-callback]")) == 4
        assert "agent 1002: in progress" in _row(browser, callbacks["dialling"]).text
        assert not _row(browser, callbacks["dialling"]).find_elements(By.CSS_SELECTOR, "form.cancel-callback")
        screenshot(browser, "callbacks.png")

        Select(browser.find_element(By.NAME, "queue")).select_by_visible_text("billing")
        browser.find_element(By.CSS_SELECTOR, "#callback-filters button").click()
        wait(browser, lambda d: "queue=billing" in d.current_url)
        shown = {r.get_attribute("data-callback") for r in browser.find_elements(By.CSS_SELECTOR, "tr[data-callback]")}
        assert shown == {callbacks["pending"], web.id}

        _row(browser, callbacks["pending"]).find_element(By.CSS_SELECTOR, "form.cancel-callback button").click()
        assert "cancelled" in visible(browser, ".flash.ok").text
        assert "queue=billing" in browser.current_url                     # the filter is kept
        assert _row(browser, callbacks["pending"]).get_attribute("data-state") == "cancelled"
        assert store.get(callbacks["pending"]).state == "cancelled"

        store.claim(web.id, "1001", NOW)                                  # serve takes it meanwhile
        _row(browser, web.id).find_element(By.CSS_SELECTOR, "form.cancel-callback button").click()
        assert "being dialled right now" in visible(browser, ".flash.error").text
        assert _row(browser, web.id).get_attribute("data-state") == "dialling"
        assert store.get(web.id).state == "dialling"
        errors = console_errors(browser)
        assert errors == [], errors


def test_agent_page_pops_the_callback_context(app, store, browser):
    web = _new(store, "+821055550000", queue="cards", name="Lee", reason="card declined abroad",
               context={"reference": "TX-88121"})
    with LiveServer(app) as server:
        log_in(browser, server.url, "agent", PASSWORDS["agent"])
        visible(browser, "#screen-pop")
        wait(browser, lambda d: d.find_element(By.ID, "pop-title").text == "No call")
        store.claim(web.id, "1001", NOW)                                  # serve rings agent 1001 for it
        wait(browser, lambda d: d.find_element(By.ID, "pop-title").text == "Ringing: callback to Lee")
        fields = {e.get_attribute("data-field"): e.text
                  for e in browser.find_elements(By.CSS_SELECTOR, "#pop-details dd")}
        assert fields["reason"] == "card declined abroad" and fields["reference"] == "TX-88121"
        assert fields["callback"] == "asked while waiting in line" and fields["attempt"] == "1"
        assert fields["in line since"] == (NOW - timedelta(minutes=4)).astimezone().strftime("%Y-%m-%d %H:%M")
        errors = console_errors(browser)
        assert errors == [], errors
