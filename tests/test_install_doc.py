"""docs/install-pi.md stays true: the units it reproduces are the shipped ones, and its
config passes check-config (so an installer who copies the page gets a hub that starts)."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "install-pi.md"


def blocks() -> dict[str, str]:
    """The page's code blocks that say which file they are (```lang file=NAME)."""
    return {name: body for name, body in re.findall(r"```\w+ file=(\S+)\n(.*?)```", DOC.read_text(), re.S)}


def test_the_page_reproduces_the_shipped_units_exactly():
    found = blocks()
    units = sorted((ROOT / "deploy" / "systemd").iterdir())
    assert units
    for unit in units:
        name = f"deploy/systemd/{unit.name}"
        assert found.get(name) == unit.read_text(), f"{DOC.name}'s copy of {name} differs from the file"


def test_the_pages_config_passes_check_config(tmp_path):
    text = blocks()["/etc/smartanom/smartanom.yaml"]
    config = tmp_path / "smartanom.yaml"
    config.write_text(text.replace("/var/lib/smartanom/", f"{tmp_path}/"))
    tokens = tmp_path / "tokens.yaml"
    tokens.write_text("tokens:\n  - {name: dashboard, role: read, token: aaaaaaaaaaaaaaaaaaaaaaaa}\n  - {name: esp32-node, role: write, token: bbbbbbbbbbbbbbbbbbbbbbbb}\n")
    tokens.chmod(0o600)
    done = subprocess.run([sys.executable, "-m", "smartanom.cli", "check-config", str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"{config}: OK (1 device, 2 sensors, 1 plugin instance)"
    assert done.stderr == ""
