"""The dashboard tells the truth on a phone: Chromium at 390x844 against a real hub, with screenshots.

Badges say "unknown" while the hub cannot be reached; every y axis has several
readable ticks and a unit label clear of them (lux included); every touch target
is at least 44 x 44 px. Screenshots land in the test's tmp_path (and in
$SMARTANOM_SCREENSHOTS when set, to look at by hand).
"""

import os
import time
from pathlib import Path

import pytest
from browser_fixtures import WatchedPage
from playwright.sync_api import expect

HUB = """
devices:
  - id: 1
    name: Tank
    offline_after: 3600
    sensors:
      - {id: 1, type: ph}
      - {id: 2, type: light}
      - {id: 3, type: water_temperature}
"""
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


@pytest.fixture
def phone(browser):
    context = browser.new_context(**PHONE)
    page = context.new_page()
    page.watched = WatchedPage(page)
    yield page
    context.close()


def shot(page, tmp_path: Path, name: str) -> None:
    for folder in filter(None, (tmp_path, os.environ.get("SMARTANOM_SCREENSHOTS"))):
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def open_with_history(page, hub):
    now = time.time()
    # Nearly flat pH (one tick before), bright lux (wide labels), a slow temperature rise.
    hub.store(
        [(1, now - 3000 + 60 * i, 6.2 + (i % 2) / 1000) for i in range(45)]
        + [(2, now - 3000 + 60 * i, 12000 + 150 * i) for i in range(45)]
        + [(3, now - 3000 + 60 * i, 21.0 + i / 20) for i in range(45)]
    )
    page.goto(hub.url + "/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    for sensor_id in (1, 2, 3):
        expect(page.locator(f'[data-sensor-id="{sensor_id}"] .chart')).to_have_attribute("data-points", "45")


AXES = """
() => [...state.sensors.entries()].map(([id, s]) => {
  const u = s.chart.plot, axis = u.axes[1];
  u.ctx.font = axis.font[0];
  const widest = Math.max(...axis._values.map((t) => u.ctx.measureText(t).width)) / devicePixelRatio;
  return {id, ticks: axis._splits.length, size: axis._size, needed: axis.ticks.size + axis.gap + widest, labels: axis._values};
})
"""


def test_axes_are_readable_and_touch_targets_big_enough(phone, threaded_hub, tmp_path):
    hub = threaded_hub(HUB)
    open_with_history(phone, hub)
    shot(phone, tmp_path, "dashboard-390x844")
    for axis in phone.evaluate(AXES):
        assert axis["ticks"] >= 3, f"sensor {axis['id']}: y axis has {axis['ticks']} tick(s): {axis['labels']}"
        assert axis["size"] >= axis["needed"], f"sensor {axis['id']}: tick labels {axis['labels']} overlap the unit label"
    small = phone.evaluate(
        """() => [...document.querySelectorAll('a, button, input, select')]
             .filter((el) => el.offsetParent !== null)
             .map((el) => { const r = el.getBoundingClientRect(); return {what: el.outerHTML.slice(0, 60), w: r.width, h: r.height}; })
             .filter((t) => t.w < 44 || t.h < 44)"""
    )
    assert small == [], f"touch targets under 44 px: {small}"
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert phone.watched.errors == []


def test_badges_say_unknown_while_the_hub_is_unreachable(phone, threaded_hub, tmp_path):
    hub = threaded_hub(HUB)
    open_with_history(phone, hub)
    hub.send({"type": "sensor_data", "sensor_id": 1, "value": 6.3})
    badge = phone.locator(".card .status")
    expect(badge).to_have_text("active")
    port = hub.port
    hub.stop()
    expect(badge).to_have_attribute("data-status", "unknown")
    expect(badge).to_have_text("unknown")
    shot(phone, tmp_path, "dashboard-390x844-hub-unreachable")
    threaded_hub(HUB, port=port)
    expect(phone.locator("#connection")).to_have_attribute("data-state", "live", timeout=20000)
    expect(badge).not_to_have_text("unknown")
    errors = [e for e in phone.watched.errors if "ERR_CONNECTION_REFUSED" not in e and not ("WebSocket connection to" in e and "failed" in e)]
    assert errors == []


def test_a_quantity_that_never_goes_negative_gets_no_negative_ticks(phone, threaded_hub):
    # Light at night is a flat 0 lux: an axis from -0.05 lux would show a value no sensor can read.
    hub = threaded_hub(HUB)
    now = time.time()
    hub.store([(2, now - 3000 + 60 * i, 0.0) for i in range(45)])
    phone.goto(hub.url + "/")
    expect(phone.locator('[data-sensor-id="2"] .chart')).to_have_attribute("data-points", "45")
    (axis,) = [a for a in phone.evaluate(AXES) if a["id"] == 2]
    assert axis["ticks"] >= 3 and all(not label.startswith(("-", "\u2212")) for label in axis["labels"]), axis["labels"]
