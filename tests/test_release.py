"""README's install without a clone: the release wheel (`make dist`) installs and runs, and a
plugin's `dependencies = ["smartanom>=0.1"]` resolves from a wheel folder (pip --find-links),
the documented way until the hub is on a public index. Offline: pip looks only at that folder."""

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLUGIN = ROOT / "examples" / "smartanom-example-plugin"


def pip(*args, cwd=None):
    done = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True, timeout=300, cwd=cwd)
    assert done.returncode == 0, f"pip {' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_a_plugins_smartanom_requirement_resolves_from_a_wheel_folder(tmp_path):
    wheels = tmp_path / "wheels"  # what a release publishes: served over HTTP, or a folder
    pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(ROOT))
    pip("wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(EXAMPLE_PLUGIN))
    (hub_wheel,) = wheels.glob("smartanom-*.whl")
    assert hub_wheel.name == f"smartanom-{metadata.version('smartanom')}-py3-none-any.whl"

    # The plugin's own metadata names the hub, and pip finds it among the wheels alone (--no-index).
    plugin_site = tmp_path / "plugin-site"
    pip("install", "--quiet", "--no-index", "--find-links", str(wheels), "--no-deps", "--target", str(plugin_site), "smartanom-example-plugin")
    (plugin_info,) = plugin_site.glob("smartanom_example_plugin-*.dist-info")
    requirement = next(line.split(":", 1)[1].strip() for line in (plugin_info / "METADATA").read_text().splitlines() if line.startswith("Requires-Dist:"))
    assert requirement == "smartanom>=0.1"
    report = tmp_path / "report.json"
    pip("install", "--dry-run", "--ignore-installed", "--no-deps", "--no-index", "--find-links", str(wheels), "--report", str(report), requirement)
    (chosen,) = json.loads(report.read_text())["install"]
    assert chosen["metadata"]["name"] == "smartanom" and chosen["download_info"]["url"] == hub_wheel.resolve().as_uri()
    # The hub's own dependencies are declared in the wheel, so pip fetches them from the index as usual.
    requires = chosen["metadata"]["requires_dist"]
    assert any(r.startswith("tornado") for r in requires) and any(r.startswith("prometheus_client") for r in requires)
