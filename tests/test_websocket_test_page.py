"""The protocol test page at /websocket-test/ (core/static/websocket-test.html), in
headless Chromium: it connects to each stream and shows what another client sends."""

import pytest
from playwright.sync_api import expect

HUB = """
devices:
  - id: 1
    name: Hydroponic System 1
    sensors:
      - {id: 1, type: temperature}
      - {id: 2, type: ph}
  - id: 2
    name: Nursery
    sensors:
      - {id: 3, type: ec}
"""


@pytest.mark.parametrize(
    "stream, pick, url",
    [
        ("all", None, "/ws/sensor-data/"),
        ("device", ("#device-select", "1"), "/ws/device/1/"),
        ("sensor", ("#sensor-select", "2"), "/ws/sensor/2/"),
    ],
)
def test_each_stream_shows_a_reading_sent_by_another_client(page, threaded_hub, stream, pick, url):
    hub = threaded_hub(HUB)
    page.goto(hub.url + "/websocket-test/")
    expect(page.locator("#device-select option")).to_have_count(2)  # loaded from /api/devices
    page.locator(f'input[name="stream"][value="{stream}"]').check()
    if pick:
        page.locator(pick[0]).select_option(pick[1])
    expect(page.locator("#url")).to_contain_text(url)
    page.locator("#connect").click()
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    hub.send({"type": "sensor_data", "sensor_id": 2, "value": 6.42})
    reading = page.locator('#readings [data-sensor-id="2"]')
    expect(reading).to_contain_text("6.42")
    expect(reading).to_contain_text("ph")
    expect(page.locator("#count-sensor_data_update")).to_have_text("1")


def test_links_back_to_the_dashboard(page, threaded_hub):
    hub = threaded_hub(HUB)
    page.goto(hub.url + "/websocket-test/")
    page.get_by_role("link", name="Dashboard").click()
    expect(page).to_have_url(hub.url + "/")
    expect(page.locator(".card")).to_have_count(2)
    # The dashboard's alert list and bands load alongside the cards (alerts.js): let those
    # requests finish, or the hub stopping at teardown refuses them and the page logs errors.
    page.wait_for_load_state("networkidle")


def test_the_token_is_masked_on_screen_but_copied_in_full(page, threaded_hub, monkeypatch):
    token = "read-token-for-the-test-page"
    monkeypatch.setenv("TEST_PAGE_TOKENS", f"read:{token}")
    hub = threaded_hub(HUB + "auth:\n  enabled: true\n  tokens_env: TEST_PAGE_TOKENS\n")
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.goto(hub.url + "/websocket-test/")
    page.locator("#token").fill(token)
    url = page.locator("#url")
    expect(url).to_have_text(f"ws://127.0.0.1:{hub.port}/ws/sensor-data/?token=••••")
    assert token not in url.get_attribute("title")
    page.locator("#token").press("Enter")  # the token field's form connects
    expect(page.locator("#status")).to_have_attribute("data-state", "connected")
    assert token not in page.locator("body").inner_text()  # not in the URL line, nor in the event log
    page.locator("#copy-url").click()
    expect(page.locator("#copy-url")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == f"ws://127.0.0.1:{hub.port}/ws/sensor-data/?token={token}"
    # Before the token was typed, the page's first /api/devices request was refused.
    page.watched.errors[:] = [e for e in page.watched.errors if "status of 401" not in e]
