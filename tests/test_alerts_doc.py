"""docs/alerts.md stays true: its profile tables are the code's, its YAML loads,
its example errors are what check-config prints, and Apprise takes its URLs."""

import re
import subprocess
import sys
from pathlib import Path

import apprise
import pytest

from smartanom.alerts.profiles import BUILTIN
from smartanom.config import load_config

DOC = Path(__file__).parent.parent / "docs" / "alerts.md"
TEXT = DOC.read_text()


def block(name: str) -> str:
    return re.search(rf"```\w+ id={name}\n(.*?)```", TEXT, re.S).group(1)


def _bound(value) -> str:
    return "–" if value is None else f"{value:g}"


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_profile_tables_match_the_code(name):
    section = re.search(rf"^### {name}\n\n(.*?)\n\n(.*?)(?:\n\n|\Z)", TEXT, re.M | re.S)
    assert section, f"docs/alerts.md has no section for profile {name}"
    profile = BUILTIN[name]
    assert section.group(1) == profile.description + "."
    rows = [line.split("|")[1:-1] for line in section.group(2).splitlines()[2:]]
    documented = {cells[0].strip(): [c.strip() for c in cells[1:5]] for cells in rows}
    expected = {
        sensor_type: [lim.unit, f"{_bound(lim.min)} to {_bound(lim.max)}", _bound(lim.critical_min), _bound(lim.critical_max)]
        for sensor_type, lim in profile.sensors.items()
    }
    assert documented == expected
    assert all(cells[5].strip() for cells in rows), "every figure names its source"


def test_the_yaml_examples_load(tmp_path):
    path = tmp_path / "hub.yaml"
    path.write_text(block("walkthrough") + block("profiles"))
    config = load_config(path, {})
    assert config.devices[0].profile == "lettuce"


def test_the_example_errors_are_what_check_config_prints(tmp_path):
    shown = re.search(r"```\nConfiguration error:\n(.*?)```", TEXT, re.S).group(1).strip().splitlines()
    path = tmp_path / "smartanom.yaml"
    broken = block("walkthrough").replace("profile: lettuce ", "profile: letuce  ")
    path.write_text(broken)
    done = subprocess.run([sys.executable, "-m", "smartanom.cli", "check-config", str(path)], capture_output=True, text=True, timeout=60)
    printed = [line.strip().replace(str(path), "config/smartanom.yaml") for line in done.stderr.splitlines() if ", line " in line]
    assert printed == [line.strip() for line in shown]


def test_every_notification_url_in_the_table_is_one_apprise_understands():
    urls = re.findall(r"^\| [^|]+ \| `([a-z]+s?://[^`]+)`", TEXT, re.M)
    assert len(urls) >= 7
    for url in urls:
        assert apprise.Apprise.instantiate(url.replace("TOPIC", "my-topic").replace("BOT_TOKEN", "123456789:ABCdefGhIJKlmnOPQRstuVWXyz012345678").replace("CHAT_ID", "12345")
                                           .replace("USER_KEY", "u" * 30).replace("APP_TOKEN", "a" * 30).replace("LONG_LIVED_TOKEN", "t" * 40)) is not None, url
