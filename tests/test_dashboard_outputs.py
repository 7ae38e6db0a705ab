"""Outputs on the dashboard (core/static/outputs.js), in headless Chromium against a real hub."""

from playwright.sync_api import expect

from smartanom.control.journal import Dose
from test_dashboard_phone import phone, shot  # noqa: F401 (phone is a fixture: Chromium at 390x844)

HUB = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
outputs:
  - {id: lights, name: Grow lights, type: simulated, device: 1}
  - {id: acid, name: pH-down pump, type: simulated, device: 1, role: ph_down}
control:
  dosing:
    - {id: ph, sensor: 1, output: acid, direction: down, target: 5.8, pump_ml_per_s: 1, gain_ml: 5,
       max_dose_ml: 5, max_ml_per_hour: 20, max_ml_per_day: 50}
"""
READ = "read-token-for-the-wall-tablet"
WRITE = "write-token-for-the-grower-phone"
FORBIDDEN = "console: Failed to load resource: the server responded with a status of 403 (Forbidden)"


def row(page, output_id):
    return page.locator(f'.output[data-output-id="{output_id}"]')


def open_dashboard(page, hub, token=None):
    page.goto(hub.url + "/" + (f"?token={token}" if token else ""))
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator(".output")).to_have_count(2)


def test_outputs_show_their_state_and_the_switch_overrides_them(page, threaded_hub):
    hub = threaded_hub(HUB)
    open_dashboard(page, hub)
    lights = row(page, "lights")
    expect(lights.locator(".output-name")).to_have_text("Grow lights")
    expect(lights.locator(".output-state")).to_have_text("off")
    expect(lights.locator(".output-why")).to_contain_text("start: hub starting")
    lights.locator(".output-for").select_option(label="15 min")
    lights.locator(".output-switch").check()
    expect(lights.locator(".output-state")).to_have_text("on")
    expect(lights.locator(".output-why")).to_contain_text("manual: override by anonymous for 900 s")
    assert hub.call(lambda: hub.hub.control.outputs.get("lights").on) is True
    lights.locator(".output-auto").click()
    expect(lights.locator(".output-state")).to_have_text("off")
    expect(lights.locator(".output-auto")).to_be_hidden()


def test_a_switch_elsewhere_arrives_over_the_websocket(page, threaded_hub):
    hub = threaded_hub(HUB)
    open_dashboard(page, hub)
    hub.call(hub.hub.control.override, "lights", True, 60, "the API")
    expect(row(page, "lights").locator(".output-state")).to_have_text("on")
    expect(row(page, "lights").locator(".output-why")).to_contain_text("override by the API")


def test_a_dosing_pump_offers_only_off_and_shows_its_controller(phone, threaded_hub, tmp_path):
    hub = threaded_hub(HUB)
    open_dashboard(phone, hub)
    acid = row(phone, "acid")
    expect(acid.locator(".output-switch")).to_be_hidden()  # no way to ask for "on" (the hub would say 409)
    expect(row(phone, "lights").locator(".output-switch")).to_be_visible()
    expect(acid.locator(".output-dosing")).to_contain_text("Dosing ph: holding: ")
    expect(acid.locator(".output-dosing")).to_contain_text("0 ml in 24 h, 0 ml in 1 h")
    acid.locator(".output-for").select_option(label="1 h")
    acid.locator(".output-stop").click()
    expect(acid.locator(".output-why")).to_contain_text("manual: override by anonymous for 3600 s")
    expect(acid.locator(".output-auto")).to_be_visible()
    assert hub.call(lambda: hub.hub.control.overrides["acid"].on) is False
    # On a phone: every control on screen, nothing wider than the screen.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    box = acid.locator(".output-stop").bounding_box()
    assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
    row(phone, "acid").scroll_into_view_if_needed()
    shot(phone, tmp_path, "outputs-dosing-390x844")
    assert phone.watched.errors == []


def test_the_controller_line_follows_the_pump(page, threaded_hub):
    hub = threaded_hub(HUB)
    open_dashboard(page, hub)
    dosing = row(page, "acid").locator(".output-dosing")
    expect(dosing).to_contain_text("holding: ")
    # A dose recorded (as the controller does before a pulse), then the pump switches: the line follows.
    hub.call(lambda: hub.hub.control.journal.record_dose(Dose(hub.hub.control.clock.now(), "ph", "acid", 4.0, 4.0), False))
    hub.call(hub.hub.control.outputs.switch, "acid", False, "interlock", "ph: dosing stopped: a test")
    expect(dosing).to_contain_text("4 ml in 24 h, 4 ml in 1 h")


def test_a_read_token_sees_outputs_but_may_not_switch(page, threaded_hub, monkeypatch):
    monkeypatch.setenv("OUTPUT_TOKENS", f"read:{READ},write:{WRITE}")
    hub = threaded_hub(HUB + "auth:\n  enabled: true\n  tokens_env: OUTPUT_TOKENS\n")
    open_dashboard(page, hub, READ)
    row(page, "lights").locator(".output-switch").click()
    expect(page.locator("#outputs-problem")).to_have_text("Switching outputs needs a token with the write role.")
    expect(row(page, "lights").locator(".output-state")).to_have_text("off")
    assert hub.call(lambda: hub.hub.control.outputs.get("lights").on) is False
    assert page.watched.errors == [FORBIDDEN]
    page.watched.errors.clear()

    page.evaluate(f"localStorage.setItem('smartanom.token', '{WRITE}')")
    open_dashboard(page, hub)
    row(page, "lights").locator(".output-switch").check()
    expect(row(page, "lights").locator(".output-state")).to_have_text("on")
