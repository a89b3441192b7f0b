"""In a real browser (headless Debian chromium): log in, open a flow, click a node in the
drawn graph, break it, see the problem on that node, fix it, publish."""
from __future__ import annotations

import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By

from tests.web.browser import (LiveServer, chromium, console_errors, graph_ready, log_in, publish,
                               screenshot, set_field, visible, wait)
from tests.web.conftest import PASSWORDS


@pytest.fixture
def browser():
    driver = chromium()
    yield driver
    driver.quit()


def click_graph_node(driver, node_id: str) -> None:
    """Click where cytoscape drew the node (offsets are from the container's centre)."""
    container = driver.find_element(By.ID, "flow-graph")
    x, y = driver.execute_script(
        "var p = window.callpilotFlowGraph.$id(arguments[0]).renderedPosition(); return [p.x, p.y];", node_id)
    size = container.size
    ActionChains(driver).move_to_element_with_offset(
        container, int(x - size["width"] / 2), int(y - size["height"] / 2)).click().perform()


def node_has_class(driver, node_id: str, cls: str) -> bool:
    return driver.execute_script("return window.callpilotFlowGraph.$id(arguments[0]).hasClass(arguments[1]);",
                                 node_id, cls)


def test_edit_see_error_on_node_fix_publish(app, services, browser):
    with LiveServer(app) as server:
        log_in(browser, server.url, "admin", PASSWORDS["admin"])
        assert browser.current_url.endswith("/flows/")
        browser.find_element(By.LINK_TEXT, "main").click()
        graph_ready(browser)
        assert browser.execute_script("return window.callpilotFlowGraph.nodes().length;") == len(
            services.flows.draft("main")["nodes"])
        screenshot(browser, "flow-editor.png")

        click_graph_node(browser, "to_billing")
        wait(browser, lambda d: "node=to_billing" in d.current_url)
        graph_ready(browser)
        assert visible(browser, "#node-title").text == "to_billing"

        set_field(browser, "priority", "500")
        browser.find_element(By.ID, "save-node").click()
        errors = visible(browser, "#node-errors")
        assert "priority must be within 0..100, got 500" in errors.text
        graph_ready(browser)
        assert node_has_class(browser, "to_billing", "invalid")
        assert not node_has_class(browser, "greeting", "invalid")
        assert browser.find_element(By.CSS_SELECTOR, "#node-list tr.invalid").get_attribute("data-node") == "to_billing"
        assert browser.find_element(By.ID, "publish").get_attribute("disabled") is not None
        screenshot(browser, "flow-editor-error.png")

        set_field(browser, "priority", "5")
        browser.find_element(By.ID, "save-node").click()
        wait(browser, lambda d: d.find_element(By.ID, "draft-status").text == "Draft is valid.")
        graph_ready(browser)
        assert not node_has_class(browser, "to_billing", "invalid")
        assert services.flows.latest_versions()["main"] == 1          # a draft, not live
        publish(browser, "billing priority 5")
        assert "Version 2 published" in browser.find_element(By.CSS_SELECTOR, ".flash").text
        assert services.flows.latest_versions()["main"] == 2
        assert services.flows.document("main", 2)["nodes"]["to_billing"]["priority"] == 5
        errors = console_errors(browser)
        assert errors == [], errors
