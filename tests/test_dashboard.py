"""The dashboard at / (core/static/dashboard.html), in headless Chromium against a real hub."""

import time

import pytest
from browser_fixtures import WatchedPage
from playwright.sync_api import expect

HUB = """
devices:
  - id: 1
    name: Hydroponic System 1
    offline_after: 30
    sensors:
      - {id: 1, type: water_temperature}
      - {id: 2, type: ph}
  - id: 2
    name: Nursery
    offline_after: 2  # long enough that a loaded machine still shows "active" first
    sensors:
      - {id: 3, type: ec}
"""


def open_dashboard(page, hub, window="1h"):
    page.add_init_script(f"localStorage.setItem('smartanom.window', '{window}')")
    page.goto(hub.url + "/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    return page


def sensor(page, sensor_id):
    return page.locator(f'[data-sensor-id="{sensor_id}"]')


def device(page, device_id):
    return page.locator(f'.card[data-device-id="{device_id}"]')


def test_one_card_per_device_with_its_sensors_and_units(page, threaded_hub):
    hub = threaded_hub(HUB)
    open_dashboard(page, hub)
    cards = page.locator(".card")
    expect(cards).to_have_count(2)
    expect(device(page, 1).locator(".device-name")).to_have_text("Hydroponic System 1")
    expect(device(page, 1).locator(".status")).to_have_text("inactive")
    expect(device(page, 1).locator(".sensor")).to_have_count(2)
    expect(sensor(page, 2).locator(".unit")).to_have_text("pH")
    expect(sensor(page, 1).locator(".unit")).to_have_text("°C")
    expect(page.locator('a[href="/websocket-test/"]')).to_be_visible()


def test_a_reading_from_another_client_shows_within_a_second(page, threaded_hub):
    hub = threaded_hub(HUB)
    open_dashboard(page, hub)
    hub.send({"type": "sensor_data", "sensor_id": 2, "value": 6.42})
    expect(sensor(page, 2).locator(".value")).to_have_text("6.42", timeout=1000)
    card = device(page, 1)
    expect(card.locator(".status")).to_have_text("active")
    expect(card.locator(".status")).to_have_attribute("data-status", "active")
    expect(card.locator(".last-reading")).to_contain_text("last reading")


def test_a_silent_device_turns_inactive(page, threaded_hub):
    hub = threaded_hub(HUB)
    open_dashboard(page, hub)
    hub.send({"type": "sensor_data", "sensor_id": 3, "value": 1.8})
    badge = device(page, 2).locator(".status")
    expect(badge).to_have_text("active")
    # offline_after is 2 s: the status tracker marks it inactive and says so on the WebSocket.
    expect(badge).to_have_text("inactive", timeout=8000)
    expect(device(page, 2).locator(".last-reading")).to_contain_text("last reading")
    hub.send({"type": "device_status", "device_id": 1, "status": "maintenance"})
    expect(device(page, 1).locator(".status")).to_have_text("maintenance")


def test_chart_shows_history_and_grows_with_live_readings(page, threaded_hub):
    hub = threaded_hub(HUB)
    now = time.time()
    stored = [(2, now - 3000 + 60 * i, 6.0 + i / 100) for i in range(40)]  # the last 50 minutes
    stored.append((2, now - 20 * 3600, 5.5))  # 20 h ago: only in the 24 h window
    hub.store(stored)
    open_dashboard(page, hub)
    chart = sensor(page, 2).locator(".chart")
    expect(chart).to_have_attribute("data-chart-window", "1h")
    expect(chart).to_have_attribute("data-points", "40")
    expect(chart.locator("canvas")).to_have_count(1)
    expect(sensor(page, 2).locator(".value")).to_have_text("6.39")  # the latest stored reading
    sent_at = time.time()
    hub.send({"type": "sensor_data", "sensor_id": 2, "value": 6.5})
    expect(chart).to_have_attribute("data-points", "41")

    page.get_by_role("button", name="24 h").click()
    expect(chart).to_have_attribute("data-chart-window", "24h")
    buckets = {int(ts // 300) for _, ts, _ in stored} | {int(sent_at // 300)}
    expect(chart).to_have_attribute("data-points", str(len(buckets)))
    box = chart.locator("canvas").bounding_box()
    assert box["width"] > 200 and box["height"] > 50


def test_reconnects_after_a_hub_restart_and_says_so(page, threaded_hub):
    first = threaded_hub(HUB)
    open_dashboard(page, first)
    port = first.port
    first.stop()
    expect(page.locator("#connection")).to_have_attribute("data-state", "reconnecting")
    expect(page.locator("#connection")).to_contain_text("reconnecting")
    second = threaded_hub(HUB, port=port)
    expect(page.locator("#connection")).to_have_attribute("data-state", "live", timeout=20000)
    second.send({"type": "sensor_data", "sensor_id": 1, "value": 21.5})
    expect(sensor(page, 1).locator(".value")).to_have_text("21.5")
    # While the hub is down the browser itself may log refused connections; nothing else is allowed.
    page.watched.errors[:] = [e for e in page.watched.errors if not network_error(e)]


def network_error(text: str) -> bool:
    return "ERR_CONNECTION_REFUSED" in text or ("WebSocket connection to" in text and "failed" in text)


def test_fits_a_phone_screen(browser, threaded_hub):
    hub = threaded_hub(HUB)
    context = browser.new_context(viewport={"width": 375, "height": 740}, is_mobile=True, has_touch=True)
    try:
        page = context.new_page()
        watched = WatchedPage(page)
        open_dashboard(page, hub)
        expect(page.locator(".card")).to_have_count(2)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"the page scrolls sideways by {overflow} px"
        card = device(page, 1).bounding_box()
        assert card["x"] >= 0 and card["x"] + card["width"] <= 375
        canvas = sensor(page, 1).locator("canvas").bounding_box()
        assert canvas["x"] + canvas["width"] <= 375
        assert watched.errors == []
    finally:
        context.close()
