"""Alerts in the browser (headless Chromium, a real hub): the dashboard shows active
alerts at the top with an Acknowledge button and bands on the charts; the test page
shows alert messages. A phone-sized screenshot (docs/alerts-dashboard.png)."""

import os
import time
from pathlib import Path

from playwright.sync_api import expect

from browser_fixtures import WatchedPage

HUB = """
alerts:
  for: 0
  no_data_after: 0
devices:
  - id: 1
    name: Hydroponic System 1
    profile: lettuce
    offline_after: 300
    sensors:
      - {id: 1, type: water_temperature}
      - {id: 2, type: ph}
      - {id: 3, type: ec}
"""

# The phone screenshot is taken on every run; with UPDATE_SCREENSHOTS=1 it replaces the
# one in docs/ (so an ordinary run leaves the working tree clean).
DOCS = Path(__file__).parent.parent / "docs"


def history(hub):
    now = time.time()
    readings = [(1, now - 1800 + 60 * i, 21.0 + (i % 5) / 10) for i in range(30)]
    readings += [(2, now - 1800 + 60 * i, 5.8 + i / 100) for i in range(30)]  # pH creeping up, still in range
    readings += [(3, now - 1800 + 60 * i, 1.1 + (i % 3) / 20) for i in range(30)]
    hub.store(readings)


def test_active_alert_at_the_top_acknowledge_and_resolve(page, threaded_hub):
    hub = threaded_hub(HUB)
    history(hub)
    page.goto(hub.url + "/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#alerts")).to_be_hidden()
    hub.send({"type": "sensor_data", "sensor_id": 2, "value": 7.1})  # above lettuce's critical 6.8
    alert = page.locator("#alerts .alert")
    expect(alert).to_have_count(1)
    expect(alert).to_have_attribute("data-severity", "critical")
    expect(alert.locator(".alert-title")).to_contain_text("pH on Hydroponic System 1 is 7.1")
    expect(alert.locator(".alert-value")).to_have_text("7.1 pH (limit 6.8)")
    expect(alert.locator(".alert-since")).to_contain_text("since")
    expect(alert.locator(".alert-advice")).to_contain_text("pH-down")
    # The alert list sits above the device cards.
    assert page.locator("#alerts").bounding_box()["y"] < page.locator(".card").first.bounding_box()["y"]
    alert.locator("button.ack").click()
    expect(alert.locator(".acked")).to_have_text("acknowledged by anonymous")
    expect(alert.locator("button.ack")).to_be_hidden()
    assert [a.state for a in hub.hub.alerts.active()] == ["acknowledged"]
    for _ in range(2):
        hub.send({"type": "sensor_data", "sensor_id": 2, "value": 6.0})
    expect(page.locator("#alerts")).to_be_hidden()


def test_a_reloaded_page_shows_alerts_already_active_and_bands_on_the_charts(page, threaded_hub):
    hub = threaded_hub(HUB)
    history(hub)
    hub.send({"type": "sensor_data", "sensor_id": 2, "value": 7.1})
    page.goto(hub.url + "/")
    expect(page.locator("#alerts .alert")).to_have_count(1)
    expect(page.locator('[data-sensor-id="2"] .chart')).to_have_attribute("data-bands", "drawn")
    expect(page.locator('[data-sensor-id="1"] .chart')).to_have_attribute("data-bands", "drawn")


def test_phone_screenshot(browser, threaded_hub, tmp_path):
    hub = threaded_hub(HUB)
    history(hub)
    hub.send({"type": "sensor_data", "sensor_id": 2, "value": 7.1})
    hub.send({"type": "sensor_data", "sensor_id": 3, "value": 0.7})  # EC a little low: a warning
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = context.new_page()
    watched = WatchedPage(page)
    try:
        page.goto(hub.url + "/")
        expect(page.locator("#alerts .alert")).to_have_count(2)
        expect(page.locator('[data-sensor-id="2"] .chart')).to_have_attribute("data-bands", "drawn")
        # Critical first; nothing wider than the phone.
        expect(page.locator("#alerts .alert").first).to_have_attribute("data-severity", "critical")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        box = page.locator("#alerts .alert button.ack").first.bounding_box()
        assert box["height"] >= 38  # a thumb can hit it
        where = DOCS if os.environ.get("UPDATE_SCREENSHOTS") else tmp_path
        page.screenshot(path=str(where / "alerts-dashboard.png"))
        page.locator('[data-sensor-id="2"]').screenshot(path=str(where / "alerts-bands.png"))  # green good band, red beyond critical
        assert watched.errors == []
    finally:
        context.close()


def test_the_test_page_shows_alert_messages(page, threaded_hub):
    hub = threaded_hub(HUB)
    page.goto(hub.url + "/websocket-test/")
    expect(page.locator("#device-select option")).to_have_count(1)
    page.locator("#connect").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    hub.send({"type": "sensor_data", "sensor_id": 2, "value": 7.1})
    entry = page.locator('#log .entry:has(.tag[data-t="alert"])')
    expect(entry).to_have_count(1)
    expect(entry.locator(".sum")).to_contain_text("started · CRITICAL · pH on Hydroponic System 1 is 7.1")
