"""In a real browser (headless Debian chromium): the new-campaign form filled by hand, the
message previewed as a contact hears it, a bad field refused with outbound's own words (the
typed values kept), then created: the campaign is in the list as a draft."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.web.browser import LiveServer, chromium, console_errors, log_in, visible, wait
from tests.web.conftest import PASSWORDS
from tests.web.test_campaigns import _created, general_queue  # noqa: F401  (fixture)

TYPED = {"name": "fraud", "purpose": "fraud alert", "template": "Hello {name}, was the payment of {amount} yours?",
         "sample": "amount=120 dollars\nname=Kim", "caller_id": "8005550100", "callback_number": "8005550199",
         "max_concurrent": "many"}


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def _type(driver, field: str, text: str) -> None:
    element = driver.find_element(By.ID, field)
    element.clear()
    element.send_keys(text)


def test_fill_preview_refuse_then_create(app, db_file, general_queue, browser):
    with LiveServer(app) as server:
        log_in(browser, server.url, "super", PASSWORDS["super"])
        browser.get(f"{server.url}/campaigns/")
        visible(browser, "#new-campaign").click()
        visible(browser, "#campaign-form")
        for field, text in TYPED.items():
            _type(browser, field, text)
        Select(browser.find_element(By.ID, "queue")).select_by_visible_text("general")

        browser.find_element(By.ID, "preview-campaign").click()
        assert visible(browser, "#preview-text").text.startswith("Hello Kim, was the payment of 120 dollars yours?")
        assert browser.find_element(By.ID, "preview-variables").text == "amount"

        browser.find_element(By.ID, "create-campaign").click()
        problem = visible(browser, "#campaign-problem").text
        assert "max concurrent" in problem and "'many' is not a number" in problem
        assert browser.find_element(By.ID, "template").get_attribute("value") == TYPED["template"]  # kept
        with pytest.raises(ValueError):
            _created(db_file)

        _type(browser, "max_concurrent", "4")
        browser.find_element(By.ID, "create-campaign").click()
        assert "created (draft)" in visible(browser, ".flash.ok").text
        wait(browser, lambda d: d.current_url.endswith("/campaigns/fraud"))
        browser.get(f"{server.url}/campaigns/")
        row = wait(browser, lambda d: d.find_element(By.XPATH, "//table[@id='campaigns']//tr[td/a[text()='fraud']]"))
        assert [td.text for td in row.find_elements(By.TAG_NAME, "td")][:4] == ["fraud", "fraud alert", "draft",
                                                                               "notification"]
        assert _created(db_file).max_concurrent == 4
        errors = [e for e in console_errors(browser)          # the refused create answered 400 on purpose
                  if not e.endswith("/campaigns/new - Failed to load resource: the server responded "
                                    "with a status of 400 (BAD REQUEST)")]
        assert errors == [], errors
