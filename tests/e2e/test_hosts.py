"""The server answers only requests that name this computer (no DNS rebinding), on `streamlit run app.py`.

A page of another site whose name was made to point at 127.0.0.1 sends its own name in the Host header:
the WebSocket that drives the app and every plain GET must then get 403, while the addresses of this
computer keep working. The requests are raw, as `curl -i -H "Host: ..."` sends them.
"""

import http.client
from urllib.parse import urlparse

import pytest

pytestmark = pytest.mark.slow

HANDSHAKE = {
    "Connection": "Upgrade",
    "Upgrade": "websocket",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}
PATHS = ("/", "/_stcore/health", "/_stcore/host-config", "/Curate", "/static/index.html")


def status_of(url: str, path: str, host: str, headers: dict[str, str] | None = None) -> int:
    """The status line's code of one GET to the server at ``url`` that names ``host`` in its Host header."""
    parsed = urlparse(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    try:
        connection.putrequest("GET", path, skip_host=True)
        connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        return connection.getresponse().status
    finally:
        connection.close()


def test_a_websocket_naming_another_host_is_refused(server) -> None:
    port = urlparse(server).port
    evil = f"evil.example:{port}"
    assert status_of(server, "/_stcore/stream", evil, {**HANDSHAKE, "Origin": f"http://{evil}"}) == 403


@pytest.mark.parametrize("path", PATHS)
def test_a_page_or_file_naming_another_host_is_refused(server, path: str) -> None:
    port = urlparse(server).port
    assert status_of(server, path, f"evil.example:{port}") == 403
    assert status_of(server, path, f"127.0.0.1.evil.example:{port}") == 403
    assert status_of(server, path, "") == 403


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "LOCALHOST", "[::1]"])
def test_this_computers_names_are_served(server, host: str) -> None:
    port = urlparse(server).port
    assert status_of(server, "/_stcore/health", f"{host}:{port}") == 200
    assert status_of(server, "/", f"{host}:{port}") == 200
    origin = {"Origin": f"http://{host}:{port}"}
    assert status_of(server, "/_stcore/stream", f"{host}:{port}", {**HANDSHAKE, **origin}) == 101
