"""Plugin packages installed with pip, as users install them.

The hub's own fixtures (hub_factory, ws_client) come from core/testing.py, which
the smartanom package registers as a pytest plugin (entry point `pytest11`),
exactly as plugin authors get them; listing it here too would load it twice.
"""

import asyncio
import importlib
import inspect
import os
import shutil
import subprocess
import sys
import tempfile
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
    """examples/smartanom-example-plugin, pip-installed into a temporary folder.

    The folder is put on sys.path and PYTHONPATH (for `smartanom` and pytest in
    child processes) for the rest of the session, as after a user's `pip install`,
    and removed at the end: the developer's .venv never gets an `example`
    plugin that a later `make run` would load.
    """
    with tempfile.TemporaryDirectory(prefix="smartanom-example-plugin-") as target, pytest.MonkeyPatch.context() as patch:
        pip_install(EXAMPLE_PLUGIN, tmp_path_factory.mktemp("example-plugin"), "--target", target)
        patch.syspath_prepend(target)
        patch.setenv("PYTHONPATH", with_pythonpath(Path(target)))
        yield metadata.distribution("smartanom-example-plugin")


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


def with_pythonpath(folder: Path) -> str:
    """PYTHONPATH with `folder` first, keeping what the session already put there."""
    return os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))


async def until(condition, timeout: float = 10.0, what: str = "the condition") -> None:
    """Wait until `condition()` (a function, or a coroutine function) is true, or fail
    after `timeout` seconds: tests wait for what they need, never a fixed time."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        assert loop.time() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        await asyncio.sleep(0.02)
