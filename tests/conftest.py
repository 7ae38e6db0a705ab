"""Plugin packages installed with pip, as users install them.

The hub's own fixtures (hub_factory, ws_client) come from core/testing.py, which
the smartanom package registers as a pytest plugin (entry point `pytest11`),
exactly as plugin authors get them; listing it here too would load it twice.
"""

import importlib
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PLUGIN = ROOT / "examples" / "smartanom-example-plugin"
BROKEN_PLUGIN = Path(__file__).resolve().parent / "packages" / "smartanom-broken-plugin"

# Headless Chromium and a hub in a thread, for the browser tests (tests/browser_fixtures.py).
pytest_plugins = ["browser_fixtures"]


def pip_install(source: Path, scratch: Path, *args: str) -> None:
    """pip-install a package folder, offline, with the build tools already in the venv.

    It is built from a copy so that no stale build/ directory in the source tree
    can leak old files into the install.
    """
    copy = scratch / source.name
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-build-isolation", "--no-deps", "--no-index", *args, str(copy)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"
    importlib.invalidate_caches()


@pytest.fixture(scope="session")
def example_plugin(tmp_path_factory) -> metadata.Distribution:
    """examples/smartanom-example-plugin, pip-installed into this environment.

    It stays installed (it only adds the `random_walk` platform), so later runs
    and `smartanom plugins` in this venv see it, as after a user's `pip install`.
    """
    pip_install(EXAMPLE_PLUGIN, tmp_path_factory.mktemp("example-plugin"))
    return metadata.distribution("smartanom-example-plugin")


@pytest.fixture(scope="session")
def broken_plugin_dir(tmp_path_factory) -> Path:
    """A folder holding the pip-installed broken plugin; on sys.path only when asked."""
    target = tmp_path_factory.mktemp("broken-plugin-site")
    pip_install(BROKEN_PLUGIN, tmp_path_factory.mktemp("broken-plugin-src"), "--target", str(target))
    return target


@pytest.fixture
def broken_plugin(broken_plugin_dir, monkeypatch) -> Path:
    """The broken plugin's entry point is visible for this test only."""
    monkeypatch.syspath_prepend(str(broken_plugin_dir))
    return broken_plugin_dir
