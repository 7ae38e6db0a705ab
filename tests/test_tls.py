"""TLS served by the hub itself (server.ssl), with a certificate made for the test."""

import datetime
import ipaddress
import ssl

import pytest
import tornado.httpclient
import tornado.websocket
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from smartanom.testing import HubClient

HUB = """
devices:
  - id: 1
    name: Tank
    sensors:
      - {id: 1, type: ph}
server:
  ssl: {certfile: tls/hub.crt, keyfile: tls/hub.key}
"""


def self_signed(directory) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smartanom test hub")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    directory.mkdir()
    (directory / "hub.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (directory / "hub.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


@pytest.fixture
def tls_hub(io_loop, hub_factory, tmp_path):
    self_signed(tmp_path / "tls")
    return io_loop.run_sync(lambda: hub_factory(HUB))


@pytest.mark.gen_test
async def test_wss_and_https_with_the_hubs_certificate(tls_hub, tmp_path):
    trust = ssl.create_default_context(cafile=str(tmp_path / "tls" / "hub.crt"))
    assert tls_hub.url.startswith("https://")
    conn = await tornado.websocket.websocket_connect(
        tornado.httpclient.HTTPRequest(f"wss://127.0.0.1:{tls_hub.port}/ws/sensor-data/", ssl_options=trust)
    )
    client = HubClient(conn)
    update = await client.request({"type": "sensor_data", "sensor_id": 1, "value": 6.1}, type="sensor_data_update")
    assert update["value"] == 6.1
    client.close()
    response = await tornado.httpclient.AsyncHTTPClient().fetch(
        tornado.httpclient.HTTPRequest(f"https://127.0.0.1:{tls_hub.port}/api/devices", ssl_options=trust)
    )
    assert response.code == 200


@pytest.mark.gen_test
async def test_an_untrusted_or_plain_client_gets_nothing(tls_hub):
    with pytest.raises(ssl.SSLError):  # the system's CAs do not know this certificate
        await tornado.websocket.websocket_connect(f"wss://127.0.0.1:{tls_hub.port}/ws/sensor-data/")
    with pytest.raises(Exception):  # plain text to a TLS port: no WebSocket
        conn = await tornado.websocket.websocket_connect(f"ws://127.0.0.1:{tls_hub.port}/ws/sensor-data/", connect_timeout=5)
        conn.close()


def test_a_missing_certificate_file_is_a_config_error(tmp_path):
    from smartanom.config import load_config
    from smartanom.errors import ConfigError
    from smartanom.testing import make_plugin_host

    path = tmp_path / "hub.yaml"
    path.write_text(HUB)
    with pytest.raises(ConfigError) as error:
        load_config(path, make_plugin_host().collect_platforms())
    messages = [str(i) for i in error.value.issues]
    assert len(messages) == 2
    assert "line 8: server.ssl.certfile: no such file" in messages[0]
    assert "line 8: server.ssl.keyfile: no such file" in messages[1]
