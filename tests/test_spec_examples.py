"""The seed spec's own examples, run verbatim against `smartanom run`.

docs/spec/websocket-api.md is a verbatim copy of the contract
(../shared/spec/websocket-api.md when this repository sits beside it). Its
examples hard-code ws://127.0.0.1:8000; the hub runs there when the port is
free, otherwise the port number alone is substituted.
"""

import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from smartanom.testing import HubProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "spec" / "websocket-api.md"
SHARED_SPEC = ROOT.parent / "shared" / "spec" / "websocket-api.md"


def example(language: str) -> str:
    return re.search(rf"```{language}\n(.*?)```", SPEC.read_text(), re.S).group(1)


def start_hub(config) -> HubProcess:
    # Port 8000 as in the examples; another program may hold it (or grab it
    # between our check and the hub's bind), then any free port will do.
    try:
        return HubProcess(config, port=8000)
    except RuntimeError as exc:
        if "already in use" not in str(exc):  # the OS error, or the hub's own "Cannot start: ... is already in use"
            raise
    return HubProcess(config, port=free_port())


@pytest.fixture
def hub(tmp_path):
    config = tmp_path / "hub.yaml"
    shipped = (ROOT / "config" / "smartanom.yaml").read_text()
    config.write_text(shipped.replace("path: data/smartanom.db", f"path: {tmp_path / 'hub.db'}"))
    with start_hub(config) as process:
        yield process


def run_for(cmd, seconds: float, cwd) -> str:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=cwd)
    time.sleep(seconds)
    proc.terminate()
    out, _ = proc.communicate(timeout=10)
    return out


def test_our_copy_of_the_spec_is_verbatim():
    if not SHARED_SPEC.exists():
        pytest.skip("../shared/spec is not beside this checkout")
    assert SPEC.read_text() == SHARED_SPEC.read_text()


def test_python_example_verbatim(hub, tmp_path):
    code = example("python").replace("127.0.0.1:8000", f"127.0.0.1:{hub.port}")
    (tmp_path / "example.py").write_text(code)
    out = run_for([sys.executable, "-u", "example.py"], 3, tmp_path)
    assert "Connection opened" in out
    # Its own reading comes back, exactly in the spec's shape...
    assert "'type': 'sensor_data_update', 'sensor_id': 1, 'sensor_type': 'water_temperature', 'device_id': 1, 'device_name': 'Hydroponic System 1', 'value': 25.5, 'unit': 'celsius', 'timestamp': '" in out
    # ...and the simulator's readings stream in.
    assert out.count("Received: {'type': 'sensor_data_update'") >= 3
    assert "Error" not in out


NODE_AS_BROWSER = """
// Run a script as a browser runs a <script>: an exception ends the script, but
// the handlers it already attached keep working.
process.on('uncaughtException', e => console.log('UNCAUGHT', e.name + ': ' + e.message));
require('vm').runInThisContext(require('fs').readFileSync(process.argv[2], 'utf8'));
"""


def node_supports_websocket() -> bool:
    node = shutil.which("node")
    if not node:
        return False
    probe = subprocess.run([node, "--experimental-websocket", "-e", "WebSocket"], capture_output=True)
    return probe.returncode == 0


needs_node = pytest.mark.skipif(not node_supports_websocket(), reason="needs Node.js >= 20.10 (WebSocket)")


@needs_node
def test_javascript_example_verbatim_connects_and_receives(hub, tmp_path):
    code = example("javascript").replace("127.0.0.1:8000", f"127.0.0.1:{hub.port}")
    (tmp_path / "example.js").write_text(code)
    (tmp_path / "harness.js").write_text(NODE_AS_BROWSER)
    out = run_for(["node", "--experimental-websocket", "harness.js", "example.js"], 4, tmp_path)
    assert "WebSocket connected" in out
    assert "Received:" in out and "type: 'sensor_data_update'" in out
    # The example calls send() before the socket is open, which every standard
    # WebSocket refuses (a browser too); docs/websocket.md shows the fix.
    assert "UNCAUGHT InvalidStateError" in out


@needs_node
def test_javascript_example_with_send_in_onopen_as_documented(hub, tmp_path):
    doc = (ROOT / "docs" / "websocket.md").read_text()
    code = re.search(r"```javascript\n(.*?)```", doc, re.S).group(1).replace("127.0.0.1:8000", f"127.0.0.1:{hub.port}")
    (tmp_path / "example.js").write_text(code)
    out = run_for(["node", "--experimental-websocket", "example.js"], 4, tmp_path)
    assert "WebSocket connected" in out
    assert "value: 25.5" in out and "sensor_id: 1" in out
