"""The dashboard at / (core/static/dashboard.html), in headless Chromium against a real hub."""

import time

import pytest
from browser_fixtures import WatchedPage
from playwright.sync_api import expect

from smartanom import SensorType, hookimpl

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


# --- with auth on (docs/security.md) ----------------------------------------------------

READ = "read-token-for-the-wall-tablet"
WRITE = "write-token-for-the-test-sender"
REFUSED = "console: Failed to load resource: the server responded with a status of 401 (Unauthorized)"

# Every state the connection badge goes through, in order, from the page's first moment.
RECORD_BADGE = """
window.badgeStates = [];
document.addEventListener("DOMContentLoaded", () => {
  const badge = document.querySelector("#connection");
  window.badgeStates.push(badge.dataset.state);
  new MutationObserver(() => window.badgeStates.push(badge.dataset.state))
    .observe(badge, { attributes: true, attributeFilter: ["data-state"] });
});
"""


@pytest.fixture
def auth_hub(threaded_hub, monkeypatch):
    monkeypatch.setenv("DASHBOARD_TOKENS", f"read:{READ},write:{WRITE}")
    return threaded_hub(HUB + "auth:\n  enabled: true\n  tokens_env: DASHBOARD_TOKENS\n")


def send_as_writer(hub, message):
    hub.send(message, path=f"/ws/sensor-data/?token={WRITE}")


def drop_refused_requests(page) -> int:
    """Remove the browser's own log lines for the API's expected 401s; return how many there were."""
    errors = page.watched.errors
    kept = [e for e in errors if e != REFUSED]
    refused = len(errors) - len(kept)
    errors[:] = kept
    return refused


def stored_token(page):
    return page.evaluate("localStorage.getItem('smartanom.token')")


def refusals(hub) -> int:
    return hub.call(lambda: hub.hub.fanout.stats.unauthorized)


def test_a_token_in_the_address_opens_the_dashboard_and_is_remembered(page, auth_hub):
    page.goto(auth_hub.url + f"/?token={READ}")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator(".card")).to_have_count(2)
    expect(page.locator("#token-form")).to_be_hidden()
    # Out of the address bar, so it is not left on screen or copied along with a link.
    expect(page).to_have_url(auth_hub.url + "/")
    send_as_writer(auth_hub, {"type": "sensor_data", "sensor_id": 2, "value": 6.42})
    expect(sensor(page, 2).locator(".value")).to_have_text("6.42")
    assert stored_token(page) == READ

    # Opened again without it (a bookmark to /), the remembered token is used.
    page.goto(auth_hub.url + "/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    send_as_writer(auth_hub, {"type": "sensor_data", "sensor_id": 3, "value": 1.75})
    expect(sensor(page, 3).locator(".value")).to_have_text("1.75")

    page.get_by_role("button", name="Forget token").click()
    expect(page.locator("#token-form")).to_be_visible()
    assert stored_token(page) is None
    assert refusals(auth_hub) <= 1  # only the forgotten page's socket, if it got that far
    assert drop_refused_requests(page) >= 1  # the API's 401 after forgetting


def test_without_a_token_it_asks_once_and_does_not_retry(page, auth_hub):
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    page.add_init_script(RECORD_BADGE)
    page.clock.install()  # the page's timers on a clock the test drives
    page.goto(auth_hub.url + "/")
    expect(page.locator("#token-form")).to_be_visible()
    expect(page.locator("#token-form")).to_contain_text("a read token is enough")
    expect(page.locator("#token-error")).to_be_hidden()
    expect(page.locator("#problem")).to_be_hidden()
    expect(page.locator("#connection")).to_have_attribute("data-state", "locked")
    expect(page.locator(".card")).to_have_count(0)
    expect(page.locator("#token")).to_be_focused()
    # A page in a reconnect loop would have tried again after 0.5, 1 and 2 s of its time.
    page.clock.run_for(4000)
    page.evaluate("() => new Promise(r => requestAnimationFrame(() => r()))")  # let a late attempt show
    assert len(sockets) <= 1, sockets
    assert refusals(auth_hub) <= 1
    assert "live" not in page.evaluate("window.badgeStates")

    page.locator("#token").fill(READ)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#token-form")).to_be_hidden()
    expect(page.locator(".card")).to_have_count(2)
    send_as_writer(auth_hub, {"type": "sensor_data", "sensor_id": 1, "value": 21.5})
    expect(sensor(page, 1).locator(".value")).to_have_text("21.5")
    assert stored_token(page) == READ
    assert sockets[-1].endswith(f"/ws/sensor-data/?token={READ}")
    # The badge went to live once, after the token: never while the page was locked out.
    states = page.evaluate("window.badgeStates")
    assert states.index("live") > states.index("locked"), states
    assert drop_refused_requests(page) >= 1


def test_a_wrong_token_brings_the_form_back_with_an_error(page, auth_hub):
    page.add_init_script(RECORD_BADGE)
    page.goto(auth_hub.url + "/?token=not-the-token-of-anyone")
    error = page.locator("#token-error")
    expect(page.locator("#token-form")).to_be_visible()
    expect(error).to_have_text("The hub did not accept that token. Check it and try again.")
    assert stored_token(page) is None

    page.locator("#token").fill("another-wrong-token-here")
    page.get_by_role("button", name="Use token").click()
    expect(error).to_have_text("The hub did not accept that token. Check it and try again.")
    expect(page.locator("#token-form")).to_be_visible()
    assert stored_token(page) is None
    assert "live" not in page.evaluate("window.badgeStates")

    page.locator("#token").fill(READ)
    page.get_by_role("button", name="Use token").click()
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator(".card")).to_have_count(2)
    expect(error).to_be_hidden()
    assert drop_refused_requests(page) >= 2


def test_a_remembered_token_the_hub_no_longer_knows_is_forgotten(page, auth_hub):
    page.add_init_script("localStorage.setItem('smartanom.token', 'a-token-since-revoked')")
    page.goto(auth_hub.url + "/")
    expect(page.locator("#token-error")).to_be_visible()
    expect(page.locator("#connection")).to_have_attribute("data-state", "locked")
    assert stored_token(page) is None
    assert drop_refused_requests(page) >= 1


class OrpMeter:
    """A plugin adding a sensor type, as in the guide's register_sensor_types section."""

    @staticmethod
    @hookimpl
    def register_sensor_types():
        return [SensorType("orp", "mV", "ORP", low=-2000, high=2000)]


def test_a_plugins_sensor_type_gets_its_card_with_name_and_unit(page, threaded_hub):
    hub = threaded_hub(
        "devices: [{id: 1, name: Tank, sensors: [{id: 1, type: orp}]}]\n",
        plugins=[("orp_meter", OrpMeter())],
    )
    hub.store([(1, time.time(), 12.5)])
    open_dashboard(page, hub)
    expect(sensor(page, 1).locator(".unit")).to_have_text("mV")
    expect(sensor(page, 1)).to_contain_text("ORP")
    expect(sensor(page, 1).locator(".value")).to_have_text("12.5")


def test_30_day_and_1_year_windows_show_hourly_and_daily_buckets(page, threaded_hub):
    hub = threaded_hub(HUB)
    now = time.time()
    stored = [(2, now - 86400 * d - 3600, 6.0 + d / 100) for d in (3, 20, 200, 300)]  # two within 30 days
    hub.store(stored)
    open_dashboard(page, hub, window="30d")
    chart = sensor(page, 2).locator(".chart")
    expect(chart).to_have_attribute("data-chart-window", "30d")
    expect(chart).to_have_attribute("data-points", "2")
    page.get_by_role("button", name="1 y").click()
    expect(chart).to_have_attribute("data-chart-window", "1y")
    expect(chart).to_have_attribute("data-points", "4")


DOT_AT_EACH_POINT = """
(id) => {
  const u = state.sensors.get(id).chart.plot;
  const ys = u.data[1], xs = u.data[0];
  return xs.map((x, i) => {
    if (ys[i] == null) return null;
    const px = Math.round(u.valToPos(x, "x", true)), py = Math.round(u.valToPos(ys[i], "y", true));
    const d = u.ctx.getImageData(px - 4, py - 4, 9, 9).data;  // the dot around the point
    for (let k = 0; k < d.length; k += 4) if (d[k + 3] > 200 && d[k + 2] > d[k] + 40) return true;
    return false;  // only the white background there
  }).filter((v) => v !== null);
}
"""


def test_a_sparse_sensor_on_the_30_day_window_shows_its_points(page, threaded_hub):
    # A reading every 5 hours: each hourly bucket stands alone between gaps, with no line
    # to draw, and too many for uPlot to show points by itself; the chart looked empty.
    hub = threaded_hub(HUB)
    now = time.time()
    hub.store([(2, now - 5 * 3600 * k - 1800, 6.0 + (k % 10) / 10) for k in range(1, 140)])
    open_dashboard(page, hub, window="30d")
    expect(sensor(page, 2).locator(".chart")).to_have_attribute("data-points", "139")
    deadline = time.monotonic() + 5
    while not all(dots := page.evaluate(DOT_AT_EACH_POINT, 2)) and time.monotonic() < deadline:
        page.wait_for_timeout(100)  # the chart draws on the next animation frame
    assert len(dots) == 139 and all(dots)
